"""Trained models: everything one consists of, and the one resolver from "a source" to a model.

A model folder (``WORK/models/<config>``: plans.json, dataset.json, ``fold_<k>/checkpoint_<kind>.pt``,
pruning.json), the checkpoint format (the single ``torch.load``), find-best's choice and the
post-processing decision, model packages (manifest, pack, verified unpack), nnU-Net v2 model
folders converted into segkit ones, and `resolve_model`, which turns a work dir, model folder,
package or nnU-Net folder into the configurations it stands for (predict, ``plan --like``,
``train --pretrained``).
"""
