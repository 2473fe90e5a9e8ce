"""ONNX networks (``fold_<k>/network.onnx``): the one owner of the exported-network format.

One file per trained fold: the network of the fold's checkpoint, as inference runs it (deep
supervision off, the UNet++ prune level of the folder's pruning.json, a reversible network's
plain forward: the same parameters, the same function), exported with the TorchScript ONNX
exporter at opset ``OPSET``. The I/O contract (docs/onnx.md):

- input ``image``: float32 ``(batch, C, z, y, x)`` (2D configurations: ``(batch, C, y, x)``), the
  preprocessed tile: resampled to the plan's target spacing and normalised per channel as the
  plans' ``normalization`` says (what ``segkit preprocess`` writes); batch and every spatial axis
  are dynamic, each spatial size a multiple of the stride product (``segkit_total_strides``),
  except for families whose trace fixes the shape (swinunetr: ``segkit_dynamic_spatial`` "false",
  the spatial axes are the plan's patch);
- output ``logits``: float32 ``(batch, K, z, y, x)``, K = plans ``num_outputs``; logits, not
  probabilities (softmax over K, or a sigmoid per region for ``label_mode`` "sigmoid").

The model's metadata properties repeat what a reader needs without segkit (``segkit_*`` keys).
`export_network` writes, `read_network` is the single reader (checks the contract against the plans).
"""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.errors import UserError
from segkit.version import __version__

if TYPE_CHECKING:
    from torch import nn

    from segkit.plans import Plans

ONNX_FORMAT = "segkit-onnx-1"
OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
NETWORK_FILE = "network.onnx"
AXIS_NAMES = {3: ("z", "y", "x"), 2: ("y", "x")}


def plain_network(checkpoint: dict, model_dir: Path) -> nn.Module:
    """The network inference runs for a checkpoint: built in its plain mode, weights loaded, pruned, eval, no deep supervision."""
    from segkit.models.pruning import apply_pruning
    from segkit.networks import build_network
    from segkit.networks.blocks.layers import instance_norms_to_group_norms
    from segkit.networks.registry import family_of

    arch = dict(checkpoint["architecture"])
    family = family_of(arch)
    if "plain" in family.execution_modes:      # a reversible stage exports its plain forward (same parameters)
        arch = family.with_mode(arch, "plain")
    network = build_network(arch, int(checkpoint["in_channels"]), int(checkpoint["num_outputs"]))
    network.load_state_dict(checkpoint["network_state"])
    network.deep_supervision = False  # type: ignore[assignment]  # a plain flag
    apply_pruning(network, model_dir)
    if family.onnx_group_norm:
        instance_norms_to_group_norms(network, affine_only=False)
    return network.eval()


def dynamic_spatial(checkpoint: dict) -> bool:
    """Whether the checkpoint's family exports with dynamic spatial axes."""
    from segkit.networks.registry import family_of

    return family_of(dict(checkpoint["architecture"])).onnx_dynamic_spatial


def metadata(arch: dict, in_channels: int, num_outputs: int, plans: Plans, configuration: str) -> dict[str, str]:
    """The segkit_* metadata properties of an exported network."""
    from segkit.networks.registry import family_of
    from segkit.plans import total_strides

    return {"segkit_format": ONNX_FORMAT, "segkit_version": __version__, "segkit_configuration": configuration,
            "segkit_dynamic_spatial": str(family_of(arch).onnx_dynamic_spatial).lower(),
            "segkit_in_channels": str(in_channels), "segkit_num_outputs": str(num_outputs),
            "segkit_label_mode": plans.label_mode,
            "segkit_patch_size": json.dumps(list(plans.configuration(configuration).patch_size)),
            "segkit_total_strides": json.dumps(total_strides(arch)),
            "segkit_normalization": json.dumps([dict(n) for n in plans.normalization]),
            "segkit_architecture": json.dumps(arch, sort_keys=True)}


def export_network(network: nn.Module, in_channels: int, patch_size: list[int],
                   properties: dict[str, str] | None = None, dynamic_spatial: bool = True) -> bytes:
    """The ONNX bytes of a (plain, eval) network traced on one zero tile; batch (and spatial) axes dynamic."""
    import onnx
    import torch

    axes = AXIS_NAMES[len(patch_size)] if dynamic_spatial else ()
    dynamic = {0: "batch", **{2 + i: name for i, name in enumerate(axes)}}
    example = torch.zeros((1, in_channels, *patch_size), dtype=torch.float32)
    # the TorchScript exporter: named dynamic axes and seconds per network; torch.export's took ~15x longer
    # here and names output axes by formulas. torch warns it is deprecated; the files are plain opset-17 ONNX.
    with warnings.catch_warnings(), torch.no_grad(), tempfile.TemporaryDirectory(prefix="segkit-onnx-") as folder:
        warnings.simplefilter("ignore")
        target = Path(folder) / NETWORK_FILE
        torch.onnx.export(network, (example,), target, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                          output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: dynamic, OUTPUT_NAME: dynamic},
                          do_constant_folding=True)
        model = onnx.load_from_string(target.read_bytes())
    for key, value in (properties or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_checkpoint(checkpoint_file: Path, model_dir: Path, plans: Plans, configuration: str) -> bytes:
    """The ONNX bytes of one fold's checkpoint, as load_model would run it."""
    from segkit.models.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(checkpoint_file)
    network = plain_network(checkpoint, model_dir)
    patch = list(plans.configuration(configuration).patch_size)
    props = metadata(dict(checkpoint["architecture"]), int(checkpoint["in_channels"]),
                     int(checkpoint["num_outputs"]), plans, configuration)
    try:
        return export_network(network, int(checkpoint["in_channels"]), patch, props, dynamic_spatial(checkpoint))
    except ImportError as err:
        raise UserError(f"ONNX export needs the onnx extra: pip install 'segkit-revmb[onnx]' ({err})") from None


def read_network(path: Path, in_channels: int, num_outputs: int, spatial_dims: int) -> bytes:
    """An exported network's bytes, checked against the I/O contract the plans imply (the single reader)."""
    try:
        import onnx
    except ImportError:
        raise UserError("ONNX networks need the onnx extra: pip install 'segkit-revmb[onnx]'", path) from None
    data = path.read_bytes()
    try:
        model = onnx.load_from_string(data)
    except Exception as err:  # noqa: BLE001  # protobuf's DecodeError and friends: any failure is a damaged file
        raise UserError(f"not a readable ONNX network ({err})", path) from None
    props = {p.key: p.value for p in model.metadata_props}
    if props.get("segkit_format") != ONNX_FORMAT:
        raise UserError(f"not a segkit ONNX network (metadata segkit_format is not {ONNX_FORMAT!r})", path)
    inputs, outputs = model.graph.input, model.graph.output
    if [i.name for i in inputs] != [INPUT_NAME] or [o.name for o in outputs] != [OUTPUT_NAME]:
        raise UserError(f"the network's inputs/outputs must be {INPUT_NAME!r}/{OUTPUT_NAME!r}", path)
    shape_in = [d.dim_value or d.dim_param for d in inputs[0].type.tensor_type.shape.dim]
    shape_out = [d.dim_value or d.dim_param for d in outputs[0].type.tensor_type.shape.dim]
    if len(shape_in) != 2 + spatial_dims or shape_in[1] != in_channels:
        raise UserError(f"the network takes {shape_in}, the plans need {in_channels} channels in "
                        f"{spatial_dims}D", path)
    if len(shape_out) != 2 + spatial_dims or shape_out[1] != num_outputs:
        raise UserError(f"the network gives {shape_out}, the plans need {num_outputs} outputs", path)
    return data
