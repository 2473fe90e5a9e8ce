"""Fingerprint + plan of the same phantom dataset: `segkit plan` vs nnU-Net v2, timed and compared.

Times `nnUNetv2_extract_fingerprint -np N` + `nnUNetv2_plan_experiment` against
`segkit plan -j N` (both as CLI runs, same worker count, one script run), then checks that the
3d_fullres target spacing and the normalisation schemes agree and lists where patch size,
batch size and topology differ (they may: segkit budgets memory in bytes for its own networks).

    .venv/bin/python scripts/compare_planner_with_nnunet.py --cases 20 --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
from nnunet_bench_common import (
    DATASET_ID,
    add_dataset_arguments,
    machine_line,
    nnunet_plans,
    prepare_nnunet_dataset,
    segkit_command,
    timed,
)

NORMALIZATION_NAMES = {"ZScoreNormalization": "zscore", "CTNormalization": "ct", "NoNormalization": "none",
                       "RescaleTo01Normalization": "rescale_0_1"}


def peer_normalization(config: dict) -> list[tuple[str, bool]]:
    """nnU-Net's per-channel (scheme, use nonzero mask) in segkit's names."""
    return [(NORMALIZATION_NAMES.get(s, s), bool(m)) for s, m in zip(config["normalization_schemes"],
                                                                     config["use_mask_for_norm"])]


def segkit_normalization(plans: dict) -> list[tuple[str, bool]]:
    """segkit's per-channel (scheme, use nonzero mask)."""
    return [(e["scheme"], bool(e.get("use_nonzero_mask", False))) for e in plans["normalization"]]


def topology_rows(peer: dict, ours: dict) -> list[tuple[str, object, object]]:
    """(what, nnU-Net, segkit) for the 3d_fullres patch, batch and network topology."""
    peer_arch = peer.get("architecture", {}).get("arch_kwargs", {})
    arch = ours.get("architecture", {})
    return [
        ("patch size (z, y, x)", peer.get("patch_size"), ours.get("patch_size")),
        ("batch size", peer.get("batch_size"), ours.get("batch_size")),
        ("median shape after resampling", peer.get("median_image_size_in_voxels"), ours.get("median_shape")),
        ("stages", peer_arch.get("n_stages"), len(arch.get("strides", []))),
        ("features per stage", peer_arch.get("features_per_stage"), arch.get("features_per_stage")),
        ("strides", peer_arch.get("strides"), arch.get("strides")),
        ("kernel sizes", peer_arch.get("kernel_sizes"), arch.get("kernel_sizes")),
        ("blocks per encoder stage", peer_arch.get("n_conv_per_stage"), arch.get("blocks_per_stage")),
        ("network", peer.get("architecture", {}).get("network_class_name", "").split(".")[-1], arch.get("family")),
    ]


def as_int_lists(value: object) -> object:
    """Normalise nested numbers for comparison (nnU-Net writes some as floats)."""
    if isinstance(value, (list, tuple)):
        return [as_int_lists(v) for v in value]
    return int(value) if isinstance(value, float) and value.is_integer() else value


def main() -> None:
    """Generate, time both planners, compare, print a markdown summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    args = parser.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="segkit_bench_plan_"))
    try:
        dataset, env = prepare_nnunet_dataset(args, base)
        nn_fp = timed(["nnUNetv2_extract_fingerprint", "-d", str(DATASET_ID), "-np", str(args.workers)], env,
                      "nnU-Net fingerprint")
        nn_plan = timed(["nnUNetv2_plan_experiment", "-d", str(DATASET_ID)], env, "nnU-Net plan")
        sk_total = timed(segkit_command() + ["plan", str(dataset), "--work-dir", str(base / "segkit"),
                                             "-j", str(args.workers)], None, "segkit plan (fingerprint + plan)")
        peer = nnunet_plans(base)["configurations"]["3d_fullres"]
        ours_plans = json.loads((base / "segkit" / "plans.json").read_text())
        ours = ours_plans["configurations"]["3d_fullres"]
        spacing_equal = bool(np.allclose(peer["spacing"], ours["target_spacing"], rtol=1e-5))
        norm_equal = peer_normalization(peer) == segkit_normalization(ours_plans)
        nn_total = nn_fp + nn_plan
        print("\n### Planner vs nnU-Net v2 (fingerprint + plan)\n")
        print(f"- machine: {machine_line()}; workers: {args.workers}")
        print(f"- dataset: {args.cases} phantom cases, 4 channels, shape (z, y, x) {tuple(args.shape)}, "
              f"spacing {args.spacing}")
        print(f"- nnU-Net v2: fingerprint {nn_fp:.1f} s + plan {nn_plan:.1f} s = {nn_total:.1f} s")
        print(f"- segkit plan: {sk_total:.1f} s")
        print(f"- speed-up: {nn_total / sk_total:.2f}x")
        print(f"- 3d_fullres target spacing: nnU-Net {[round(v, 5) for v in peer['spacing']]}, "
              f"segkit {[round(v, 5) for v in ours['target_spacing']]} -> {'equal' if spacing_equal else 'DIFFERENT'}")
        print(f"- normalisation: nnU-Net {peer_normalization(peer)}, segkit {segkit_normalization(ours_plans)} -> "
              f"{'equal' if norm_equal else 'DIFFERENT'}")
        print("\n| 3d_fullres | nnU-Net v2 | segkit | same |\n| --- | --- | --- | --- |")
        for what, theirs, mine in topology_rows(peer, ours):
            same = as_int_lists(theirs) == as_int_lists(mine)
            print(f"| {what} | {as_int_lists(theirs)} | {as_int_lists(mine)} | {'yes' if same else 'no'} |")
        if not (spacing_equal and norm_equal):
            raise SystemExit("target spacing or normalisation differ from nnU-Net's")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
