"""Crop, normalise, resample and store cases; the same functions serve inference.

Public API:
  preprocess_images(images, spacing, plans, config) -> (data, properties)   inference input
  revert_to_original(outputs, properties, plans, config) -> outputs on the original grid
  preprocess_arrays(images, labels, spacing, plans, config) -> (data, seg, properties)
  preprocess_dataset(dataset, configs, work_dir, plans_file, num_workers, force)   the CLI's work
"""

from segkit.preprocessing.pipeline import (
                                           preprocess_arrays,
                                           preprocess_images,
                                           preprocessing_fingerprint,
                                           revert_to_original,
                                           sample_class_locations,
)
from segkit.preprocessing.runner import preprocess_dataset
from segkit.preprocessing.store import case_paths, is_complete

__all__ = ["preprocess_arrays", "preprocess_images", "preprocessing_fingerprint", "revert_to_original",
           "sample_class_locations", "preprocess_dataset", "case_paths", "is_complete"]
