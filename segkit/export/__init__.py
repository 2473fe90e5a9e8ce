"""Exports: challenge formats (BraTS, MSD). Model packages (model.zip) are `segkit.models.package`."""
