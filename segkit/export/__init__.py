"""Exports: challenge formats (BraTS, MSD) and model packages (model.zip)."""
