"""`segkit predict -i INPUT -o OUTPUT -m MODEL`: label maps (and probabilities) for new images.

Argument parsing only: the run itself is `segkit.batch.pipeline.predict_cases` with the
model ensemble of `segkit.inference.resolve.load_ensemble`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from segkit.cli.options import add_log_format_option

if TYPE_CHECKING:
    from segkit.inference.predictor import InferenceOptions

CHECKPOINT_KINDS = ("final", "best", "latest")


def checkpoint_kind(text: str) -> str:
    """'final' from final, checkpoint_final, checkpoint_final.pt or nnU-Net's checkpoint_final.pth."""
    name = Path(text).name
    for suffix in (".pth", ".pt"):
        name = name.removesuffix(suffix)
    return name.removeprefix("checkpoint_")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the predict subcommand."""
    parser = subparsers.add_parser(
        "predict", help="predict label maps for new images with a trained model", allow_abbrev=False,
        description="Sliding-window prediction (Gaussian-weighted tiles, mirroring TTA), fold and configuration "
                    "ensembling, post-processing, and label maps written with each input's exact geometry. "
                    "A case that fails is recorded in OUTPUT/report.json and the others go on (exit 1); "
                    "run-level mistakes exit 2.")
    add_arguments(parser)
    parser.set_defaults(func=run)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The predict flags, with nnU-Net v2's spellings accepted as aliases."""
    parser.add_argument("-i", "--input", required=True,
                        help="image file, folder of CASE_XXXX files and/or DICOM study folders, or raw dataset folder")
    parser.add_argument("-o", "--output", required=True,
                        help="output folder (or FILE.nii.gz: the label map of a single input image)")
    parser.add_argument("-m", "--model", required=True,
                        help="model folder WORK/models/<config>, a work dir WORK (find-best's choice, or -c), "
                             "or a model.zip from export-model")
    parser.add_argument("-c", "--configuration", nargs="+",
                        help="configuration(s); two or more are ensembled (default: the model's, or find-best's choice)")
    parser.add_argument("-f", "--folds", nargs="+", help="folds to ensemble, e.g. 0 1 2 3 4 or all "
                                                          "(default: every trained fold)")
    parser.add_argument("--checkpoint", "-chk", type=checkpoint_kind, choices=CHECKPOINT_KINDS, default="final",
                        help="final (default), best or latest; nnU-Net's checkpoint_final.pth is accepted")
    parser.add_argument("--save-probabilities", "--save_probabilities", action="store_true",
                        help="also write <CASE>.npz probabilities")
    parser.add_argument("--device", "-device", default="auto", help="auto (CUDA if available), cpu or cuda[:n]")
    parser.add_argument("--step", "-step_size", type=float, default=0.5,
                        help="tile step as a fraction of the patch (default 0.5)")
    parser.add_argument("--tile-batch", type=int, default=4, help="tiles per forward pass (default 4)")
    parser.add_argument("--no-tta", "--disable_tta", action="store_true",
                        help="disable mirroring test-time augmentation")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="network arithmetic (logits are accumulated in fp32): auto = fp16 on CUDA, bf16 on "
                             "CPUs with AMX/AVX512-BF16, else fp32; fp32 gives bit-stable results")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "openvino", "auto"), default="torch",
                        help="what runs the network (everything else is the same pipeline): torch (default), "
                             "onnxruntime or openvino (CPU; segkit-revmb[onnx] / [openvino]; an ONNX package needs "
                             "one of them), auto = torch unless another backend was measured faster and as "
                             "accurate on this machine (see docs/onnx.md)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and the ONNX backends (default: torch's choice)")
    parser.add_argument("-npp", "-nps", dest="nnunet_processes", type=int, metavar="N",
                        help="nnU-Net's worker process counts, accepted and ignored: segkit reads the next case and "
                             "writes the previous one in one background thread each")
    parser.add_argument("--fail-fast", action="store_true",
                        help="stop at the first case that fails (exit 2) instead of recording it and going on")
    parser.add_argument("--no-postprocess", action="store_true",
                        help="do not apply the post-processing find-best decided for this model")
    parser.add_argument("--uncertainty", action="store_true",
                        help="write CASE_entropy.nii.gz (+ CASE_disagreement.nii.gz with several folds), per-structure "
                             "uncertainty scores in report.json and statistics, and flag cases above the model's "
                             "review threshold (segkit calibrate-uncertainty)")
    group = parser.add_argument_group("hospital runs (see docs/deployment.md)")
    group.add_argument("--continue", dest="resume", action="store_true",
                       help="skip cases whose outputs exist and are valid (readable, input geometry)")
    group.add_argument("--dicom-seg", action="store_true", help="also write CASE_seg.dcm for DICOM inputs")
    group.add_argument("--statistics", action="store_true",
                       help="write CASE_stats.json (voxels, mL per label) and statistics.csv")
    group.add_argument("--preview", action="store_true", help="write CASE_preview.png (needs segkit[plot])")
    group.add_argument("--num-parts", "-num_parts", type=int, help="split the sorted cases into N parts (case i -> part i %% N)")
    group.add_argument("--part-id", "-part_id", type=int, help="which part this process runs (0 .. N-1)")
    group.add_argument("--channel-map", help="DICOM series per channel by SeriesDescription, e.g. '0=T1*,1=FLAIR*'")
    group.add_argument("--series-uid", help="DICOM series to use when a study folder holds several")
    add_log_format_option(group)
    group.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)   # the default since 0.2; kept for scripts


def inference_options(args: argparse.Namespace) -> InferenceOptions:
    """InferenceOptions from parsed flags."""
    from segkit.inference.predictor import InferenceOptions

    return InferenceOptions(step=args.step, tta=not args.no_tta, tile_batch=args.tile_batch,
                            save_probabilities=args.save_probabilities, precision=args.precision,
                            backend=args.backend, uncertainty=getattr(args, "uncertainty", False))


def check_output(path: str, input_path: Path) -> Path:
    """The output folder path; an existing file or the input folder itself is a UserError (nothing created)."""
    from segkit.errors import UserError

    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise UserError("exists and is not a folder; -o needs an output folder", folder)
    if folder.name in REFERENCE_FOLDERS and (folder.parent / "dataset.json").is_file():
        raise UserError(f"this is a dataset's {folder.name}: predictions would overwrite its reference labels; "
                        f"choose another output folder", folder)
    if input_path.is_dir() and folder.resolve() == input_path.resolve():
        raise UserError("the output folder must differ from the input folder (outputs would become inputs)", folder)
    return folder


REFERENCE_FOLDERS = ("labelsTr", "labelsTs")


def single_output_file(args: argparse.Namespace, input_path: Path) -> Path | None:
    """`-o FILE.nii.gz` (TotalSegmentator's habit): the label map file to write for one input image, else None."""
    from segkit.errors import UserError
    from segkit.io.image import image_suffix

    if not image_suffix(args.output) or Path(args.output).is_dir() or not input_path.is_file():
        return None   # a folder of cases writes into a folder, whatever its name
    folder_only = [flag for flag, on in (("--save-probabilities", args.save_probabilities), ("--dicom-seg", args.dicom_seg),
                                         ("--statistics", args.statistics), ("--preview", args.preview),
                                         ("--continue", args.resume), ("--num-parts", args.num_parts)) if on]
    if folder_only:
        raise UserError(f"-o FILE writes the label map alone; {', '.join(folder_only)} need(s) an output folder",
                        Path(args.output))
    return Path(args.output)


def deliver_single_file(output_dir: Path, case, target: Path) -> None:
    """Move the one case's label map from the scratch folder to the requested file (converted if the format differs)."""
    from segkit.io.image import image_suffix, read_image, write_image

    label = output_dir / f"{case.case_id}{case.file_ending}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if image_suffix(label) == image_suffix(target):
        os.replace(label, target)
    else:
        image = read_image(label)
        write_image(image.array, image.geometry, target)


def output_folder(path: str, input_path: Path) -> Path:
    """The output folder, checked and created; an unwritable place is a UserError."""
    from segkit.errors import UserError

    folder = check_output(path, input_path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create the output folder ({err.strerror})", folder) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError("the output folder is not writable", folder)
    return folder


def run(args: argparse.Namespace) -> int:
    """Resolve the model and the cases, run the pipeline, print a summary; exit 1 when a case failed."""
    import torch

    from segkit import logs
    from segkit.batch.cases import InputSpec, discover_cases, input_folder
    from segkit.batch.outputs import OutputRequest
    from segkit.batch.pipeline import RunOptions, predict_cases
    from segkit.batch.report import check_same_model, report_name
    from segkit.batch.sharding import rank_device, resolve_part
    from segkit.errors import UserError
    from segkit.inference.resolve import load_ensemble
    from segkit.io.dicom_seg import segment_names
    from segkit.io.dicom_series import parse_channel_map
    from segkit.plans import (
        canonical_orientation_of,
        channel_names_of,
        labels_of,
        regions_class_order_of,
        segment_coding_of,
    )

    logs.configure(args.log_format, component="predict")
    if args.threads:
        torch.set_num_threads(args.threads)
    input_path = Path(args.input)
    if not input_path.exists():
        raise UserError("input not found", input_path)
    cases_folder = input_folder(input_path) if input_path.is_dir() else input_path
    target = single_output_file(args, input_path)
    if target is not None:   # predict into a scratch folder beside the file, then move the label map there
        args.output = str(target.parent / f".{target.name}.segkit-partial")
    check_output(args.output, cases_folder)   # before the model loads; created only once everything is valid
    num_parts, part_id = resolve_part(args.num_parts, args.part_id)
    options = inference_options(args)
    engine = load_ensemble(args.model, args.configuration, args.folds, args.checkpoint, rank_device(args.device),
                           options, postprocess=not args.no_postprocess)
    cases = discover_cases(input_path)
    output_dir = output_folder(args.output, cases_folder)
    # an output folder nested in the input folder is not a DICOM study
    cases = [c for c in cases if c.sources[0].resolve() != output_dir.resolve()]
    plans = engine.plans
    channel_map = parse_channel_map(args.channel_map)
    if channel_map is not None and len(channel_map) != engine.num_channels:
        raise UserError(f"--channel-map names {len(channel_map)} channel(s) but the model expects "
                        f"{engine.num_channels}")
    spec = InputSpec(engine.num_channels, tuple(channel_names_of(plans) or ()), channel_map, args.series_uid)
    precision_used = engine.precision()
    request = OutputRequest(output_dir, labels_of(plans), segment_names(labels_of(plans), regions_class_order_of(plans)),
                            dicom_seg=args.dicom_seg, statistics=args.statistics, preview=args.preview,
                            probabilities=args.save_probabilities, qc_image=True, precision=precision_used,
                            segment_coding=segment_coding_of(plans),
                            uncertainty_maps=uncertainty_maps(engine) if args.uncertainty else ())
    run_info = {**engine.identity, "device": str(engine.device), "backend": backend_info(engine),
                "labels": labels_of(plans),
                "canonical_orientation": canonical_orientation_of(plans),   # None: a model planned as stored
                "options": {"continue": args.resume, "dicom_seg": args.dicom_seg, "statistics": args.statistics,
                            "preview": args.preview, "save_probabilities": args.save_probabilities,
                            "fail_fast": args.fail_fast, "tta": options.tta, "step": options.step,
                            "precision": options.precision, "backend": options.backend,
                            "uncertainty": args.uncertainty}}
    if args.uncertainty:
        run_info["uncertainty_calibration"] = calibration_summary(engine.calibration)
        if engine.calibration is None:
            logs.warning("segkit predict: --uncertainty: this model has no review threshold (run segkit "
                         "calibrate-uncertainty on its work dir); cases are scored but not flagged",
                         event="no_calibration")
    if args.resume:
        check_same_model(output_dir / report_name(part_id, num_parts), run_info)
    folder = cases_folder if input_path.is_dir() else input_path.parent
    # a single file is the whole run: its failure is the run's (exit 2), as for any one-case command
    fail_fast = args.fail_fast or input_path.is_file()
    logs.info(f"predicting {len(cases)} case(s) with {engine.describe()} on {engine.device}", event="run_started",
              text=False, cases=len(cases), model=run_info.get("model"), configuration=run_info.get("configuration"),
              device=str(engine.device), precision=run_info["backend"]["precision"], output=str(output_dir))
    show_progress = False if logs.json_mode() else None
    try:
        report = predict_cases(engine, cases, spec, request,
                               RunOptions(args.resume, num_parts, part_id, fail_fast, show_progress=show_progress,
                                          run_info=run_info), folder)
        if target is None:
            return _summary(report, engine)
        if report.totals()["ok"] != 1:
            return _summary(report, engine)
        deliver_single_file(output_dir, cases[0], target)
        print(f"{target}: label map of {input_path} with {engine.describe()} on {engine.device}")
        return 0
    finally:
        if target is not None:
            shutil.rmtree(output_dir, ignore_errors=True)


def uncertainty_maps(engine) -> tuple[str, ...]:
    """The per-voxel maps --uncertainty writes: entropy, and disagreement when every member has several folds."""
    several = all(len(member.folds) > 1 for member in engine.members)
    return ("entropy", "disagreement") if several else ("entropy",)


def calibration_summary(calibration: dict | None) -> dict | None:
    """What report.json keeps of the model's calibration: threshold, score, target and cross-validation quality."""
    if calibration is None:
        return None
    return {key: calibration[key] for key in ("threshold", "score", "target", "quality", "num_cases", "configuration")
            if key in calibration}


def backend_info(engine) -> dict:
    """Where and how the networks ran: backend (name, requested, why), device, library versions, the precision used."""
    from importlib.metadata import version

    import torch

    chosen = dict(engine.identity.get("backend") or {"name": "torch"})
    chosen.pop("precision", None)
    name = chosen.get("name", "torch")
    info = {"name": name, "device": str(engine.device), "torch": torch.__version__, "precision": engine.precision()}
    if name != "torch":
        info[name] = version(name)
    return {**info, **{k: v for k, v in chosen.items() if k not in info}}


def _summary(report, engine) -> int:
    """Print what the run did (failures and warnings to stderr); the exit code."""
    from segkit import logs
    from segkit.batch.pipeline import exit_code

    totals = report.totals()
    line = (f"{report.path}: {totals['ok']} ok, {totals['skipped']} skipped, {totals['failed']} failed of "
            f"{totals['cases']} case(s) with {engine.describe()} on {engine.device}")
    note = engine.identity.get("postprocessing_note")
    flagged = sum(bool((c.get("uncertainty") or {}).get("flagged")) for c in report.cases)
    if logs.json_mode():   # each failed case already had its case_finished line
        if note:
            logs.warning(f"segkit predict: {note}", event="postprocessing_note")
        logs.info(line, event="run_finished", report=str(report.path), flagged=flagged, exit_code=exit_code(report),
                  **{key: value for key, value in totals.items()})
        return exit_code(report)
    print(line)
    for entry in report.cases:
        if entry["status"] == "failed":
            print(f"  failed {entry['case_id']}: {entry['reason']}", file=sys.stderr)
    if note:   # run-level report warnings reach stderr through BatchReport.warn
        print(f"segkit predict: warning: {note}", file=sys.stderr)
    return exit_code(report)
