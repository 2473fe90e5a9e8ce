"""The batch side of `segkit predict`: flags, model packages, and the robust per-case run.

Batch mode (report.json, per-case failures recorded, exit 1 when any case failed) is used
when any batch flag is given, when the input is or holds DICOM studies, when torchrun's
RANK/WORLD_SIZE are set, or when a model package carries a post-processing decision;
otherwise `segkit predict` keeps its plain behaviour.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

BATCH_FLAGS = ("resume", "batch", "dicom_seg", "statistics", "preview", "num_parts", "part_id", "channel_map",
               "series_uid")


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the batch flags to the predict parser."""
    group = parser.add_argument_group("batch runs (hospital jobs; see docs/deployment.md)")
    group.add_argument("--batch", action="store_true",
                       help="robust batch mode: a failing case is recorded in report.json and the run goes on "
                            "(implied by every flag below)")
    group.add_argument("--continue", dest="resume", action="store_true",
                       help="skip cases whose outputs exist and are valid (readable, input geometry)")
    group.add_argument("--dicom-seg", action="store_true", help="also write CASE_seg.dcm for DICOM inputs")
    group.add_argument("--statistics", action="store_true",
                       help="write CASE_stats.json (voxels, mL per label) and statistics.csv")
    group.add_argument("--preview", action="store_true", help="write CASE_preview.png (needs segkit[plot])")
    group.add_argument("--num-parts", type=int, help="split the sorted cases into N parts (case i -> part i %% N)")
    group.add_argument("--part-id", type=int, help="which part this process runs (0 .. N-1)")
    group.add_argument("--channel-map", help="DICOM series per channel by SeriesDescription, e.g. '0=T1*,1=FLAIR*'")
    group.add_argument("--series-uid", help="DICOM series to use when a study folder holds several")
    group.add_argument("--no-postprocess", action="store_true",
                       help="do not apply a packaged model's find_best.json post-processing")


def batch_mode_requested(args: argparse.Namespace) -> bool:
    """True when a batch flag is set, the input is or holds DICOM studies, or torchrun launched us."""
    if any(getattr(args, name, None) not in (None, False) for name in BATCH_FLAGS):
        return True
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:
        return True
    folder = Path(args.input)
    if not folder.is_dir() or (folder / "dataset.json").is_file():
        return False
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if any(p.is_dir() for p in entries):
        return True
    from segkit.io.dicom import series_in_folder
    from segkit.io.image import image_suffix

    return not any(image_suffix(p) for p in entries) and bool(series_in_folder(folder))


def resolve_model_argument(args: argparse.Namespace) -> dict:
    """Replace a model.zip in args.model by its verified extraction; return the package facts for the report."""
    from segkit.errors import UserError
    from segkit.export.package import sha256_of
    from segkit.export.unpack import is_model_package, unpack_model

    if not is_model_package(args.model):
        return {}
    package = Path(args.model)
    unpacked = unpack_model(package)
    if args.checkpoint not in ("final", unpacked.checkpoint):
        raise UserError(f"the package holds checkpoint_{unpacked.checkpoint}, not checkpoint_{args.checkpoint}",
                        package)
    if args.configuration not in (None, unpacked.configuration):
        raise UserError(f"the package holds configuration {unpacked.configuration!r}, not {args.configuration!r}",
                        package)
    args.model, args.checkpoint = str(unpacked.model_dir), unpacked.checkpoint
    args.folds = args.folds or unpacked.folds
    return {"package": str(package), "package_sha256": sha256_of(package),
            "package_segkit_version": unpacked.manifest.get("segkit_version"),
            "postprocessing": unpacked.manifest.get("postprocessing")}


def rank_device(device: str, environ=None) -> str:
    """Under torchrun, 'auto'/'cuda' become cuda:<LOCAL_RANK> so that each rank uses its own GPU."""
    import torch

    environ = os.environ if environ is None else environ
    if device not in ("auto", "cuda") or "LOCAL_RANK" not in environ or not torch.cuda.is_available():
        return device
    return f"cuda:{int(environ['LOCAL_RANK']) % torch.cuda.device_count()}"


def _input_folder(path: str) -> Path:
    """The folder holding the cases: the input, or a raw dataset's imagesTs (else imagesTr)."""
    from segkit.errors import UserError

    folder = Path(path)
    if not folder.is_dir():
        raise UserError("batch mode needs an input folder (image files CASE_XXXX and/or DICOM study folders)", folder)
    if (folder / "dataset.json").is_file():
        for split in ("imagesTs", "imagesTr"):
            if (folder / split).is_dir():
                return folder / split
    return folder


def _case_steps(model, options, postprocessing: dict | None, output_dir: Path):
    """CaseSteps that run the inference helper's per-case functions (and save probabilities when asked)."""
    from segkit.batch.runner import CaseSteps
    from segkit.evaluation.postprocess import apply_postprocessing
    from segkit.inference.predictor import finish_case, network_probabilities, prepare_case
    from segkit.inference.probabilities import probability_metadata, save_probabilities

    def prepare(case, loaded):
        return prepare_case(model, case.case_id, loaded.images, loaded.geometry)

    def compute(prepared):
        probabilities = network_probabilities(model, prepared.data, options)
        prediction = finish_case(model, prepared, probabilities, options.save_probabilities)
        if prediction.probabilities is not None:
            metadata = probability_metadata(prediction.case_id, prediction.geometry, model.plans, ".nii.gz",
                                            configuration=model.configuration, folds=model.folds,
                                            model=str(model.model_dir))
            save_probabilities(output_dir / f"{prediction.case_id}.npz", prediction.probabilities, metadata)
        labels = prediction.labels
        return apply_postprocessing(labels, postprocessing) if postprocessing else labels

    return CaseSteps(compute=compute, prepare=prepare)


def _postprocessing(model, args: argparse.Namespace) -> dict | None:
    """The packaged post-processing decision (model folder's find_best.json), unless disabled."""
    from segkit.evaluation.postprocess import load_decision

    path = Path(model.model_dir) / "find_best.json"
    if args.no_postprocess or not path.is_file():
        return None
    return load_decision(path)


IDENTITY_KEYS = ("model", "package_sha256", "configuration", "folds", "checkpoint", "postprocessing")


def check_same_model(report_path: Path, run_info: dict) -> None:
    """With --continue, refuse to mix outputs of another model (per the earlier report), naming the difference."""
    from segkit.errors import UserError
    from segkit.jsonio import read_json

    if not report_path.is_file():
        return
    try:
        previous = read_json(report_path, "batch report")
    except UserError:
        return  # an unreadable report is rewritten; the outputs themselves are still checked one by one
    key_order = ("package_sha256",) if run_info.get("package_sha256") else IDENTITY_KEYS
    for key in key_order:
        if key in previous and previous.get(key) != run_info.get(key):
            raise UserError(f"--continue: the outputs here were made with {key} {previous.get(key)!r}, this run "
                            f"uses {run_info.get(key)!r}; use a new output folder or drop --continue", report_path)


def run_batch_predict(args: argparse.Namespace, package_info: dict, inference_options) -> int:
    """Predict the input folder's cases robustly; exit 0, or 1 when any case failed."""
    from segkit.batch.cases import InputSpec, discover_cases
    from segkit.batch.outputs import OutputRequest
    from segkit.batch.runner import BatchOptions, exit_code, run_batch
    from segkit.batch.sharding import resolve_part
    from segkit.inference.model import load_model
    from segkit.io.dicom import parse_channel_map
    from segkit.io.dicom_seg import segment_names

    from segkit.errors import UserError

    output_dir = Path(args.output)
    num_parts, part_id = resolve_part(args.num_parts, args.part_id)
    input_dir = _input_folder(args.input)
    if output_dir.resolve() == input_dir.resolve():
        raise UserError("the output folder must differ from the input folder (outputs would become inputs)",
                        output_dir)
    # an output folder nested in the input folder is not a DICOM study
    cases = [c for c in discover_cases(input_dir) if c.sources[0].resolve() != output_dir.resolve()]
    model = load_model(args.model, args.configuration, args.folds, args.checkpoint, rank_device(args.device))
    from segkit.inference.predictor import window_settings

    window_settings(model, inference_options)  # bad --step/--tile-batch: exit 2 before any case
    plans = model.plans
    channel_map = parse_channel_map(args.channel_map)
    if channel_map is not None and len(channel_map) != model.num_channels:
        raise UserError(f"--channel-map names {len(channel_map)} channel(s) but the model expects {model.num_channels}")
    spec = InputSpec(model.num_channels, tuple(plans.get("channel_names") or ()), channel_map, args.series_uid)
    request = OutputRequest(output_dir, plans["labels"], segment_names(plans["labels"], plans.get("regions_class_order")),
                            dicom_seg=args.dicom_seg, statistics=args.statistics, preview=args.preview,
                            probabilities=inference_options.save_probabilities)
    postprocessing = _postprocessing(model, args)
    run_info = {"model": str(Path(args.model).resolve()), **package_info, "configuration": model.configuration,
                "folds": list(model.folds), "checkpoint": model.checkpoint, "device": str(model.device),
                "postprocessing": postprocessing,
                "canonical_orientation": plans.get("canonical_orientation"),  # None: legacy as-stored model
                "options": {"continue": args.resume, "dicom_seg": args.dicom_seg, "statistics": args.statistics,
                            "preview": args.preview, "save_probabilities": inference_options.save_probabilities}}
    if args.resume:
        from segkit.batch.report import report_name

        check_same_model(output_dir / report_name(part_id, num_parts), run_info)
    report = run_batch(cases, spec, request, _case_steps(model, inference_options, postprocessing, output_dir),
                       BatchOptions(args.resume, num_parts, part_id, run_info), input_dir)
    totals = report.totals()
    print(f"{report.path}: {totals['ok']} ok, {totals['skipped']} skipped, {totals['failed']} failed "
          f"of {totals['cases']} case(s)")
    for entry in report.cases:
        if entry["status"] == "failed":
            print(f"  failed {entry['case_id']}: {entry['reason']}")
    return exit_code(report)


def run_if_batch(args: argparse.Namespace, inference_options) -> int | None:
    """Resolve a model.zip in args; run batch mode when requested (exit code), else None for plain predict."""
    package_info = resolve_model_argument(args)
    # only the batch runner applies a packaged post-processing decision: such packages always use it
    packaged_decision = package_info.get("postprocessing") and not args.no_postprocess
    if not (batch_mode_requested(args) or packaged_decision):
        return None
    return run_batch_predict(args, package_info, inference_options(args))
