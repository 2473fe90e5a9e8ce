"""plans.json: the format's owner — version, the single reader and writer, and typed read-only views.

The file on disk stays plain JSON (docs/architecture.md, "plans.json"). Stages parse it once where
they start, into frozen views; nothing outside this package reads a plans dict by key
(tests/test_contracts.py).

- `views`: `Plans`, `Configuration`, `Architecture`, `LabelCoding`: fields, defaults, checks;
- `fields`: accessors of the top-level fields without a typed attribute (`ignore_label_of`, ...);
- `file`: `read_plans` and `write_plans`, the only reader and writer of plans.json.
"""

from segkit.plans.fields import (
    ENSEMBLE_KEYS,
    canonical_orientation_of,
    channel_names_of,
    configuration_of,
    configurations_of,
    dataset_name_of,
    ensemble_fields_of,
    head_meaning_of,
    ignore_label_of,
    imported_from_of,
    label_mode_of,
    labels_of,
    like_of,
    memory_model_of,
    mirror_pairs_of,
    network_in_channels,
    normalization_of,
    num_channels_of,
    num_outputs_of,
    oblique_inputs_of,
    output_label_values,
    outputs_of,
    planned_budget_of,
    preprocessing_fields,
    previous_stage_classes,
    previous_stage_of,
    regions_class_order_of,
    segment_coding_of,
    training_orientations_of,
    training_ranges_of,
    with_configuration,
)
from segkit.plans.file import (
    plans_file,
    read_plans,
    write_plans,
)
from segkit.plans.views import (
    DEFAULT_ACCUMULATION,
    DEFAULT_BATCH_SIZE,
    DEFAULT_LABEL_MODE,
    DEFAULT_NORM,
    DEFAULT_SLICE_AXIS,
    DEFAULT_TILE_WEIGHTS,
    LABEL_MODES,
    PLANS_FILENAME,
    SCHEMA_VERSION,
    SWAP_KEY,
    Architecture,
    Configuration,
    LabelCoding,
    Plans,
    slice_axis_of,
    spatial_dims_of,
    stride_product,
    total_strides,
)

__all__ = ["Architecture", "Configuration", "DEFAULT_ACCUMULATION", "DEFAULT_BATCH_SIZE", "DEFAULT_LABEL_MODE",
           "DEFAULT_NORM", "DEFAULT_SLICE_AXIS", "DEFAULT_TILE_WEIGHTS", "ENSEMBLE_KEYS", "LABEL_MODES",
           "LabelCoding", "PLANS_FILENAME", "Plans", "SCHEMA_VERSION", "SWAP_KEY", "canonical_orientation_of",
           "channel_names_of", "configuration_of", "configurations_of", "dataset_name_of", "ensemble_fields_of",
           "head_meaning_of", "ignore_label_of", "imported_from_of", "label_mode_of", "labels_of", "like_of",
           "memory_model_of", "mirror_pairs_of", "network_in_channels", "normalization_of", "num_channels_of",
           "num_outputs_of", "oblique_inputs_of", "output_label_values", "outputs_of", "planned_budget_of",
           "plans_file", "preprocessing_fields", "previous_stage_classes", "previous_stage_of", "read_plans",
           "regions_class_order_of", "segment_coding_of", "slice_axis_of", "spatial_dims_of", "stride_product",
           "total_strides", "training_orientations_of", "training_ranges_of", "with_configuration",
           "write_plans"]
