"""nnU-Net v2 trained model folders -> segkit model folders, without nnunetv2 and without running pickled code.

An nnU-Net v2 model folder (`nnUNet_results/DatasetXXX_Name/<Trainer>__<Plans>__<config>/`) holds
`plans.json`, `dataset.json` and `fold_<k>/checkpoint_{final,best,latest}.pth`. The checkpoints are
`torch.save` dicts (`network_weights`, `inference_allowed_mirroring_axes`, `init_args`, optimizer
state, the training log with numpy scalars); they are read by `segkit.models.checkpoint.load_weights_only`
(weights-only) plus the smallest allowlist those files need (numpy scalars and dtypes). Anything else is refused.

The translation is data only: nnU-Net's PlainConvUNet / ResidualEncoderUNet become segkit's
"unet" / "resenc" architecture entries (with the layer options that make the state dicts map
one to one), its normalisation classes become plans `normalization` entries with the stored
intensity properties, and its resampling rules map onto the configuration's `resampling`.
nnU-Net's axis order (image reader + `transpose_forward`) is folded into the converted network:
patch, kernels, strides, spacing, mirror axes and the convolution weights are permuted so the
network runs on segkit's (z, y, x) arrays and computes exactly what nnU-Net's does.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from segkit.errors import UserError
from segkit.jsonio import read_json, write_json
from segkit.models.nnunet_checkpoint import read_nnunet_checkpoint
from segkit.models.unpack import cache_root as segkit_cache_root
from segkit.workdir import checkpoint_path, fold_dir, model_dataset_path, plans_path

CHECKPOINT_FILES = {"final": "checkpoint_final.pth", "best": "checkpoint_best.pth", "latest": "checkpoint_latest.pth"}
FOLD_DIR = re.compile(r"^fold_(?P<fold>\d+|all)$")
ANISOTROPY_THRESHOLD = 3.0            # nnunetv2.configuration.ANISO_THRESHOLD
NEVER_SEPARATE = 1e30                 # force_separate_z = False: no spacing ratio exceeds this
# array axes of nnU-Net's reader relative to segkit's SimpleITK (z, y, x) order
READER_AXES = {"SimpleITKIO": (0, 1, 2), "SimpleITKIOWithReorient": None, "NibabelIO": (2, 1, 0),
               "NibabelIOWithReorient": None}
FAMILIES = {"PlainConvUNet": "unet", "ResidualEncoderUNet": "resenc"}
NORMALIZATION_SCHEMES = {"ZScoreNormalization": "zscore", "CTNormalization": "ct", "NoNormalization": "none",
                         "RescaleTo01Normalization": "rescale_0_1", "RGBTo0_1Normalization": "rgb_0_1"}
CACHE_VERSION = 3   # 3: nnU-Net's float16 accumulation in the converted plans


# ---------------------------------------------------------------- detection and checkpoint reading

def is_nnunet_model_folder(path: str | Path) -> bool:
    """True for a folder with plans.json, dataset.json and at least one fold_*/checkpoint_*.pth."""
    path = Path(path)
    if not ((path / "plans.json").is_file() and (path / "dataset.json").is_file()):
        return False
    return any(FOLD_DIR.match(p.parent.name) for p in path.glob("fold_*/checkpoint_*.pth"))


# ---------------------------------------------------------------- plans translation


@dataclass(frozen=True)
class NnunetPlans:
    """nnU-Net v2's own plans.json (not segkit's: this import module is its one reader), the fields it translates."""

    configurations: Mapping[str, Any]
    image_reader_writer: str | None
    transpose_forward: tuple[int, ...]
    intensity_properties: Mapping[Any, Any]      # foreground_intensity_properties_per_channel
    median_spacing: tuple[float, ...] | None     # original_median_spacing_after_transp
    dataset_name: str | None
    plans_name: str | None

    @classmethod
    def from_json(cls, data: Any, where: Path) -> NnunetPlans:
        """Parse nnU-Net's plans dict; UserError naming the file when it is not an object."""
        if not isinstance(data, Mapping):
            raise UserError("nnU-Net plans.json: expected a JSON object", where)
        configurations = data.get("configurations") or {}
        median = data.get("original_median_spacing_after_transp")
        name = data.get("dataset_name")
        return cls(configurations=configurations if isinstance(configurations, Mapping) else {},
                   image_reader_writer=data.get("image_reader_writer"),
                   transpose_forward=tuple(int(a) for a in data.get("transpose_forward", [0, 1, 2])),
                   intensity_properties=data.get("foreground_intensity_properties_per_channel") or {},
                   median_spacing=tuple(float(v) for v in median) if median else None,
                   dataset_name=None if name is None else str(name), plans_name=data.get("plans_name"))

def configuration_name(folder: Path, checkpoint: dict | None) -> str:
    """The configuration a model folder was trained with: init_args, else `<Trainer>__<Plans>__<config>`."""
    init_args = (checkpoint or {}).get("init_args")
    if isinstance(init_args, dict) and isinstance(init_args.get("configuration"), str):
        return init_args["configuration"]
    parts = folder.resolve().name.split("__")
    if len(parts) == 3:
        return parts[2]
    raise UserError("cannot tell the nnU-Net configuration (no init_args in the checkpoint and the folder is not "
                    "named <Trainer>__<Plans>__<configuration>)", folder)


def resolved_configuration(plans: NnunetPlans, name: str, where: Path) -> dict:
    """A plans configuration with `inherits_from` parents merged in (child keys win)."""
    configurations = plans.configurations
    chain, seen = [], set()
    while name is not None:
        if name in seen or name not in configurations:
            raise UserError(f"nnU-Net plans have no usable configuration {name!r}", where)
        seen.add(name)
        chain.append(configurations[name])
        name = configurations[name].get("inherits_from")
    merged: dict = {}
    for entry in reversed(chain):
        merged.update(entry)
    return merged


def reader_axes(plans: NnunetPlans, dataset: dict, where: Path) -> tuple[int, int, int]:
    """segkit array axis of each axis of the arrays nnU-Net's image reader returns."""
    reader = dataset.get("overwrite_image_reader_writer") or plans.image_reader_writer or "SimpleITKIO"
    axes = READER_AXES.get(reader)
    if axes is None:
        raise UserError(f"nnU-Net image reader {reader!r} is not supported (SimpleITKIO and NibabelIO are)", where)
    return axes


def network_axes(plans: NnunetPlans, dataset: dict, where: Path) -> list[int]:
    """segkit (z, y, x) axis of each of nnU-Net's network axes in 3D (reader order, then transpose_forward)."""
    axes = reader_axes(plans, dataset, where)
    transpose = list(plans.transpose_forward)
    if sorted(transpose) != [0, 1, 2]:
        raise UserError(f"transpose_forward {transpose} is not a permutation of 0, 1, 2", where)
    return [axes[t] for t in transpose]


def _class_name(value: object) -> str:
    """The last dotted component of an nnU-Net class path (or '' when absent)."""
    return str(value).rsplit(".", 1)[-1] if value else ""


def architecture_kwargs(config: dict, where: Path) -> tuple[str, dict]:
    """(segkit family, nnU-Net arch kwargs) from a configuration, new (>= 2.4) or old plans format."""
    arch = config.get("architecture")
    if isinstance(arch, dict):
        name = _class_name(arch.get("network_class_name"))
        kwargs = dict(arch.get("arch_kwargs") or {})
    else:   # nnU-Net < 2.4: UNet_class_name and flat keys
        name = str(config.get("UNet_class_name", ""))
        kernels = config.get("conv_kernel_sizes") or []
        base, cap = int(config.get("UNet_base_num_features", 32)), int(config.get("unet_max_num_features", 320))
        kwargs = {"n_stages": len(kernels), "features_per_stage": [min(base * 2 ** i, cap) for i in range(len(kernels))],
                  "kernel_sizes": kernels, "strides": config.get("pool_op_kernel_sizes"),
                  "n_conv_per_stage": config.get("n_conv_per_stage_encoder"),
                  "n_blocks_per_stage": config.get("n_conv_per_stage_encoder"),
                  "n_conv_per_stage_decoder": config.get("n_conv_per_stage_decoder"), "conv_bias": True,
                  "norm_op": "InstanceNorm", "norm_op_kwargs": {"eps": 1e-5, "affine": True},
                  "nonlin": "LeakyReLU", "nonlin_kwargs": {"inplace": True}}
    if name not in FAMILIES:
        raise UserError(f"nnU-Net network {name or 'unknown'!r} is not supported "
                        f"(supported: {', '.join(FAMILIES)})", where)
    return FAMILIES[name], kwargs


def _per_stage(value: object, stages: int) -> list:
    """nnU-Net allows an int for 'the same in every stage'."""
    return list(value) if isinstance(value, (list, tuple)) else [value] * stages


def segkit_architecture(family: str, kwargs: dict, order: list[int], where: Path) -> dict:
    """The segkit architecture entry of nnU-Net arch kwargs, axes reordered by `order` (see permute)."""
    stages = int(kwargs.get("n_stages") or len(kwargs["kernel_sizes"]))
    if _class_name(kwargs.get("norm_op")).startswith("InstanceNorm") is False:
        raise UserError(f"nnU-Net norm_op {kwargs.get('norm_op')!r} is not supported (InstanceNorm is)", where)
    nonlin = _class_name(kwargs.get("nonlin"))
    nonlin_kwargs = kwargs.get("nonlin_kwargs") or {}
    if nonlin == "LeakyReLU":
        slope = float(nonlin_kwargs.get("negative_slope", 0.01))
    elif nonlin == "ReLU":
        slope = 0.0
    else:
        raise UserError(f"nnU-Net nonlinearity {kwargs.get('nonlin')!r} is not supported (LeakyReLU, ReLU are)", where)
    for key in ("bottleneck_channels", "squeeze_excitation"):
        if kwargs.get(key):
            raise UserError(f"nnU-Net network option {key} is not supported", where)
    if _class_name(kwargs.get("block")) not in ("", "BasicBlockD"):
        raise UserError(f"nnU-Net residual block {kwargs.get('block')!r} is not supported (BasicBlockD is)", where)
    features = [int(f) for f in _per_stage(kwargs["features_per_stage"], stages)]
    if kwargs.get("stem_channels") not in (None, features[0]):
        raise UserError("nnU-Net stem_channels different from the first stage's features is not supported", where)
    kernels = [permute(_per_stage(k, len(order)), order) for k in _per_stage(kwargs["kernel_sizes"], stages)]
    strides = [permute(_per_stage(s, len(order)), order) for s in _per_stage(kwargs["strides"], stages)]
    blocks_key = "n_conv_per_stage" if family == "unet" else "n_blocks_per_stage"
    norm_kwargs = kwargs.get("norm_op_kwargs") or {}
    return {"family": family, "spatial_dims": len(order), "features_per_stage": features,
            "kernel_sizes": [[int(v) for v in k] for k in kernels], "strides": [[int(v) for v in s] for s in strides],
            "blocks_per_stage": [int(n) for n in _per_stage(kwargs[blocks_key], stages)],
            "decoder_blocks_per_stage": [int(n) for n in _per_stage(kwargs["n_conv_per_stage_decoder"], stages - 1)],
            "norm": "instance", "deep_supervision": True, "conv_bias": bool(kwargs.get("conv_bias", False)),
            "skip_bias": False, "norm_eps": float(norm_kwargs.get("eps", 1e-5)),
            "norm_affine": bool(norm_kwargs.get("affine", False)), "negative_slope": slope}


def permute(values: Sequence, order: list[int]) -> list:
    """values listed in nnU-Net's network-axis order, re-listed in segkit's: out[j] = values[order[j]]."""
    return [values[i] for i in order]


def axis_order(nn_axes: list[int]) -> tuple[list[int], list[int]]:
    """segkit's network axes (sorted) and, for each, its position among nnU-Net's network axes."""
    segkit_axes = sorted(nn_axes)
    return segkit_axes, [nn_axes.index(a) for a in segkit_axes]


def label_outputs(dataset: dict, where: Path) -> dict:
    """labels (without 'ignore'), label_mode, outputs, regions_class_order and num_outputs from dataset.json."""
    labels = dict(dataset.get("labels") or {})
    if not labels:
        raise UserError("dataset.json has no 'labels'", where)
    labels.pop("ignore", None)
    regions = any(isinstance(v, (list, tuple)) and len(v) > 1 for v in labels.values())
    foreground = {name: value for name, value in labels.items() if name != "background"}
    if regions:
        outputs = {name: [int(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
                   for name, value in foreground.items()}
        order = dataset.get("regions_class_order")
        if not order or len(order) != len(outputs):
            raise UserError("region-based dataset.json needs regions_class_order with one value per region", where)
        return {"labels": labels, "label_mode": "sigmoid", "outputs": outputs,
                "regions_class_order": [int(v) for v in order], "num_outputs": len(outputs)}
    values = {name: int(value[0] if isinstance(value, (list, tuple)) else value) for name, value in labels.items()}
    ordered = sorted(((v, n) for n, v in values.items() if v != 0))
    if [v for v, _ in ordered] != list(range(1, len(ordered) + 1)):
        raise UserError("nnU-Net label values must be consecutive 0..N (besides 'ignore')", where)
    return {"labels": values, "label_mode": "softmax", "outputs": {n: [v] for v, n in ordered},
            "regions_class_order": None, "num_outputs": len(ordered) + 1}


def normalization_entries(plans: NnunetPlans, config: dict, num_channels: int, where: Path) -> list[dict]:
    """segkit normalization entries for nnU-Net's normalization_schemes and stored intensity properties."""
    schemes = config.get("normalization_schemes") or []
    use_mask = config.get("use_mask_for_norm") or [False] * len(schemes)
    if len(schemes) != num_channels:
        raise UserError(f"plans list {len(schemes)} normalization schemes for {num_channels} channels", where)
    properties = plans.intensity_properties
    entries = []
    for channel, scheme in enumerate(schemes):
        name = NORMALIZATION_SCHEMES.get(_class_name(scheme))
        if name is None:
            raise UserError(f"nnU-Net normalization {scheme!r} is not supported "
                            f"({', '.join(NORMALIZATION_SCHEMES)} are)", where)
        entry: dict = {"scheme": name}
        if name == "zscore":
            entry["use_nonzero_mask"] = bool(use_mask[channel])
        elif name == "ct":
            stats = properties.get(str(channel)) or properties.get(channel)
            if not stats:
                raise UserError(f"CTNormalization of channel {channel} needs "
                                "foreground_intensity_properties_per_channel in plans.json", where)
            entry.update(clip=[float(stats["percentile_00_5"]), float(stats["percentile_99_5"])],
                         mean=float(stats["mean"]), std=float(stats["std"]))
        entries.append(entry)
    return entries


def resampling_entry(config: dict, where: Path) -> dict:
    """segkit `resampling` for nnU-Net's resample_data_or_seg_to_shape settings; UserError for others."""
    for key, expected_order in (("resampling_fn_data", None), ("resampling_fn_probabilities", 1)):
        function = _class_name(config.get(key, "resample_data_or_seg_to_shape"))
        if function not in ("resample_data_or_seg_to_shape", "resample_data_or_seg_to_spacing"):
            raise UserError(f"nnU-Net {key} {function!r} is not supported", where)
        kwargs = config.get(f"{key}_kwargs") or {}
        if int(kwargs.get("order_z", 0)) != 0 or kwargs.get("force_separate_z") is True:
            raise UserError(f"nnU-Net {key}_kwargs {kwargs} not supported (order_z 0, force_separate_z "
                            "null/false are)", where)
        if expected_order is not None and int(kwargs.get("order", 1)) != expected_order:
            raise UserError(f"nnU-Net {key} with order {kwargs.get('order')} is not supported (order 1 is)", where)
    data_kwargs = config.get("resampling_fn_data_kwargs") or {}
    order = int(data_kwargs.get("order", 3))
    if order not in (0, 1, 3):
        raise UserError(f"nnU-Net image resampling order {order} is not supported (0, 1, 3 are)", where)
    never = data_kwargs.get("force_separate_z") is False
    return {"image_order": order, "label": "onehot_linear",
            "anisotropy_threshold": NEVER_SEPARATE if never else ANISOTROPY_THRESHOLD}


def segkit_plans(plans: NnunetPlans, dataset: dict, name: str, mirror_axes: Sequence[int] | None, where: Path) -> dict:
    """The segkit plans.json of one nnU-Net configuration (one entry, named like nnU-Net's)."""
    config = resolved_configuration(plans, name, where)
    if config.get("previous_stage"):
        raise UserError(f"{name!r} is a cascade stage (needs {config['previous_stage']!r} predictions); segkit "
                        "imports single-stage configurations", where)
    family, kwargs = architecture_kwargs(config, where)
    nn_axes3 = network_axes(plans, dataset, where)
    patch = [int(p) for p in config["patch_size"]]
    spacing_t = [float(s) for s in config["spacing"]]
    if len(patch) == 2:
        slice_axis, nn_axes = nn_axes3[0], nn_axes3[1:]
    elif len(patch) == 3:
        slice_axis, nn_axes = None, nn_axes3
    else:
        raise UserError(f"patch_size {patch} must have 2 or 3 entries", where)
    segkit_axes, order = axis_order(nn_axes)
    target = [1.0, 1.0, 1.0]
    for axis, value in zip(nn_axes, spacing_t[-len(nn_axes):]):
        target[axis] = value
    if slice_axis is not None:   # nnU-Net keeps each case's own spacing along the 2d slice axis
        target[slice_axis] = float((plans.median_spacing or (1.0, 1.0, 1.0))[0])
    channel_names = dataset.get("channel_names") or dataset.get("modality") or {}
    num_channels = len(channel_names)
    median = config.get("median_image_size_in_voxels") or []
    median_shape = [int(median[nn_axes3.index(a)]) for a in range(3)] if len(median) == 3 else None
    entry = {"spatial_dims": len(patch), "target_spacing": target, "median_shape": median_shape,
             "batch_size": int(config.get("batch_size", 2)), "resampling": resampling_entry(config, where),
             "previous_stage": None, "patch_size": permute(patch, order),
             "mirror_axes": sorted(segkit_axes.index(nn_axes[int(m)]) for m in (mirror_axes or [])),
             "architecture": segkit_architecture(family, kwargs, order, where),
             # nnU-Net's inference policy: its tile weights and their float16 sums, folds averaged as logits
             "inference": {"tile_weights": "nnunet_gaussian", "accumulation": "fp16", "fold_average": "logits"}}
    if slice_axis is not None:
        entry["slice_axis"] = int(slice_axis)
        entry["keep_spacing_axes"] = [int(slice_axis)]
    dataset_name = plans.dataset_name if plans.dataset_name is not None else dataset.get("name", "nnUNet")
    result = {"schema_version": 1, "dataset_name": dataset_name,
              "num_channels": num_channels,
              "channel_names": [channel_names[k] for k in sorted(channel_names, key=lambda k: int(k))],
              **label_outputs(dataset, where),
              "normalization": normalization_entries(plans, config, num_channels, where),
              "canonical_orientation": "as_stored",
              "imported_from": {"format": "nnU-Net v2", "plans_name": plans.plans_name,
                                "configuration": name, "network_axes": nn_axes3},
              "configurations": {name: entry}}
    return result


# ---------------------------------------------------------------- weights

def nnunet_key_to_segkit(key: str, family: str) -> str | None:
    """segkit state-dict key of an nnU-Net one; None for nnU-Net's duplicate views (all_modules, decoder.encoder)."""
    key = key.removeprefix("module.").removeprefix("_orig_mod.")
    if ".all_modules." in key or key.startswith("decoder.encoder."):
        return None
    layer = {"conv": "0", "norm": "1"}
    match = re.fullmatch(r"decoder\.stages\.(\d+)\.convs\.(\d+)\.(conv|norm)\.(\w+)", key)
    if match:
        return f"decoder.{match[1]}.blocks.{match[2]}.{layer[match[3]]}.{match[4]}"
    match = re.fullmatch(r"decoder\.transpconvs\.(\d+)\.(\w+)", key)
    if match:
        return f"decoder.{match[1]}.upsample.{match[2]}"
    match = re.fullmatch(r"decoder\.seg_layers\.(\d+)\.(\w+)", key)
    if match:
        return f"heads.{match[1]}.{match[2]}"
    if family == "unet":
        match = re.fullmatch(r"encoder\.stages\.(\d+)\.0\.convs\.(\d+)\.(conv|norm)\.(\w+)", key)
        if match:
            return f"encoder.{match[1]}.{match[2]}.{layer[match[3]]}.{match[4]}"
        return _unknown_key(key)
    match = re.fullmatch(r"encoder\.stem\.convs\.0\.(conv|norm)\.(\w+)", key)
    if match:
        return f"encoder.0.0.{layer[match[1]]}.{match[2]}"
    match = re.fullmatch(r"encoder\.stages\.(\d+)\.blocks\.(\d+)\.(conv1|conv2)\.(conv|norm)\.(\w+)", key)
    if match:
        block = int(match[2]) + (1 if match[1] == "0" else 0)   # segkit's stage 0 starts with the stem
        return f"encoder.{match[1]}.{block}.{match[3]}.{layer[match[4]]}.{match[5]}"
    match = re.fullmatch(r"encoder\.stages\.(\d+)\.blocks\.(\d+)\.skip\.(\d+)\.(conv|norm)\.(\w+)", key)
    if match:
        block = int(match[2]) + (1 if match[1] == "0" else 0)
        index = int(match[3]) + (1 if match[4] == "norm" else 0)   # segkit's skip: [pool,] conv, norm
        return f"encoder.{match[1]}.{block}.skip.{index}.{match[5]}"
    return _unknown_key(key)


def _unknown_key(key: str) -> str:
    """Raise: a weight the translation does not know (a different network than the plans say)."""
    raise UserError(f"unexpected nnU-Net weight {key!r} for this network")


def segkit_state(weights: dict, family: str, order: list[int]) -> dict:
    """nnU-Net network_weights as a segkit state dict, convolution kernels permuted to segkit's axes."""
    state = {}
    for key, value in weights.items():
        name = nnunet_key_to_segkit(key, family)
        if name is None:
            continue
        if value.ndim == 2 + len(order) and value.ndim >= 4 and order != sorted(order):
            value = value.permute(0, 1, *[2 + i for i in order])
        state[name] = value.contiguous().clone()
    return state


# ---------------------------------------------------------------- conversion

def nnunet_fold_checkpoints(folder: Path, checkpoint: str, folds: Sequence[str] | None) -> list[tuple[str, Path]]:
    """(fold, path) of the requested checkpoint kind in each (requested) fold folder."""
    if checkpoint not in CHECKPOINT_FILES:
        raise UserError(f"checkpoint must be one of {', '.join(CHECKPOINT_FILES)}, got {checkpoint!r}")
    filename = CHECKPOINT_FILES[checkpoint]
    if folds:
        found = [(str(f), folder / f"fold_{f}" / filename) for f in folds]
        for fold, path in found:
            if not path.is_file():
                raise UserError(f"fold {fold} has no {filename}", path.parent)
        return found
    found = [(m["fold"], p / filename) for p in sorted(folder.iterdir())
             if (m := FOLD_DIR.match(p.name)) and (p / filename).is_file()]
    if not found:
        raise UserError(f"no fold_*/{filename} in this nnU-Net model folder (try --checkpoint best)", folder)
    return found


def convert_nnunet_model(source: str | Path, output: str | Path, checkpoint: str = "final",
                         folds: Sequence[str] | None = None) -> Path:
    """Write a segkit model folder (plans.json, dataset.json, fold_<k>/checkpoint_<kind>.pt) for an nnU-Net one."""
    from segkit.models.checkpoint import FORMAT, save_checkpoint
    from segkit.networks import build_network
    from segkit.plans import Plans, imported_from_of, write_plans

    source, output = Path(source), Path(output)
    if not is_nnunet_model_folder(source):
        raise UserError("not an nnU-Net v2 model folder (needs plans.json, dataset.json, fold_*/checkpoint_*.pth)",
                        source)
    if output.exists() and any(output.iterdir()):
        raise UserError("output folder exists and is not empty", output)
    plans = NnunetPlans.from_json(read_json(source / "plans.json", "nnU-Net plans.json"), source / "plans.json")
    dataset = read_json(source / "dataset.json", "dataset.json")
    fold_paths = nnunet_fold_checkpoints(source, checkpoint, folds)
    checkpoints = [(fold, path, read_nnunet_checkpoint(path)) for fold, path in fold_paths]
    name = configuration_name(source, checkpoints[0][2])
    mirror = checkpoints[0][2].get("inference_allowed_mirroring_axes")
    converted = segkit_plans(plans, dataset, name, mirror, source)
    view = Plans.from_json(converted, source)
    entry = view.configuration(name)
    arch = entry.architecture.as_dict()
    nn_axes3 = imported_from_of(view)["network_axes"]
    _, order = axis_order(nn_axes3[1:] if entry.spatial_dims == 2 else nn_axes3)
    network = build_network(arch, view.num_channels, view.num_outputs)
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for fold, path, ckpt in checkpoints:
            state = segkit_state(ckpt["network_weights"], entry.architecture.family, order)
            try:
                network.load_state_dict(state)
            except RuntimeError as err:
                raise UserError(f"weights do not fit the plans' network ({str(err).splitlines()[0][:200]})",
                                path) from None
            payload = {"format": FORMAT, "network_state": state, "architecture": arch,
                       "in_channels": view.num_channels, "num_outputs": view.num_outputs,
                       "configuration": name, "plans_sha256": entry.sha256(),
                       "epoch": int(ckpt.get("current_epoch", 0) or 0),
                       "imported_from": str(path)}
            fold_dir(staging, fold).mkdir()
            save_checkpoint(checkpoint_path(fold_dir(staging, fold), checkpoint), payload)
        write_plans(plans_path(staging), converted)
        write_json(model_dataset_path(staging), dataset)
        if output.exists():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return output


def cache_root() -> Path:
    """Where `segkit predict -m <nnU-Net folder>` keeps converted models: <segkit cache>/nnunet."""
    return segkit_cache_root() / "nnunet"


def cache_key(source: Path, checkpoint: str) -> str:
    """Changes whenever the folder's plans, dataset.json or any checkpoint of that kind changes."""
    parts = [str(CACHE_VERSION), str(source.resolve()), checkpoint]
    for path in [source / "plans.json", source / "dataset.json",
                 *sorted(source.glob(f"fold_*/{CHECKPOINT_FILES.get(checkpoint, '')}"))]:
        stat = path.stat()
        parts.append(f"{path.relative_to(source)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def cached_segkit_model(source: str | Path, checkpoint: str = "final") -> Path:
    """The segkit model folder converted from an nnU-Net one, converting (every fold) on first use."""
    source = Path(source)
    target = cache_root() / cache_key(source, checkpoint)
    if not plans_path(target).is_file():
        try:
            convert_nnunet_model(source, target, checkpoint)
        except (OSError, UserError):
            if not plans_path(target).is_file():   # not merely another process converting at once
                raise
    return target
