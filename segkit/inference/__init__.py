"""Inference: sliding-window prediction, fold/model ensembling, region -> label conversion."""
