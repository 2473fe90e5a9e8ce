"""Import MSD and BraTS folders into the canonical raw layout (see segkit.io.dataset).

convert_dataset plans every output file first (validating names and dataset.json
without reading voxels), then runs the file jobs, optionally in worker processes. Each
file is written atomically; dataset.json is written last, and if any job fails every
output of this run is removed again, so DEST never holds a half-converted dataset.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from segkit.errors import UserError
from segkit.io.convert_brats import BRATS_FORMATS, brats_flavour, case_folders, plan_brats
from segkit.io.convert_files import FileJob, run_job
from segkit.io.convert_msd import plan_msd
from segkit.io.parallel import parallel_map
from segkit.jsonio import read_json, write_json

FORMATS = ("auto", "msd", "brats2021", "brats2023")
LAYOUT_ENTRIES = ("dataset.json", "imagesTr", "labelsTr", "imagesTs")


def detect_format(src: str | Path) -> str:
    """Detect whether src is an MSD task folder or a BraTS 2021 / 2023+ folder."""
    src = Path(src)
    if not src.is_dir():
        raise UserError("source folder not found", src)
    json_path = src / "dataset.json"
    if json_path.is_file():
        data = read_json(json_path, "dataset.json")
        if isinstance(data, dict) and "channel_names" in data:
            raise UserError("already in the nnU-Net v2 raw layout (has 'channel_names'); nothing to convert",
                            json_path)
        if isinstance(data, dict) and "modality" in data:
            return "msd"
        raise UserError("dataset.json is neither MSD ('modality') nor nnU-Net v2 ('channel_names')", json_path)
    found = {flavour for folder in case_folders(src) if (flavour := brats_flavour(folder)) is not None}
    if len(found) == 1:
        return found.pop()
    if len(found) > 1:
        raise UserError(f"case folders mix BraTS formats ({', '.join(sorted(found))})", src)
    raise UserError("cannot detect the format: no MSD dataset.json and no BraTS case folders "
                    "(CASE/CASE_flair.nii.gz or CASE/CASE-t2f.nii.gz)", src)


def plan_conversion(src: Path, dest: Path, format_name: str) -> tuple[list[FileJob], dict]:
    """File jobs and the dataset.json for converting src into dest."""
    if format_name == "msd":
        return plan_msd(src, dest)
    if format_name in BRATS_FORMATS:
        return plan_brats(src, dest, format_name)
    raise UserError(f"unknown format {format_name!r}; choose from {', '.join(FORMATS)}")


def _check_destination(src: Path, dest: Path, overwrite: bool) -> None:
    """Refuse a destination that overlaps the source, or is non-empty without overwrite."""
    src_resolved, dest_resolved = src.resolve(), dest.resolve()
    if src_resolved == dest_resolved or src_resolved in dest_resolved.parents or dest_resolved in src_resolved.parents:
        raise UserError("destination overlaps the source folder; choose a separate folder", dest)
    if dest.exists() and not dest.is_dir():
        raise UserError("destination exists and is not a folder", dest)
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise UserError("destination is not empty; pass --overwrite to replace its dataset", dest)


def _clear_layout(dest: Path) -> None:
    """Remove a previous dataset's layout entries (and nothing else) from dest."""
    for name in LAYOUT_ENTRIES:
        path = dest / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _remove_outputs(dest: Path, jobs: list[FileJob]) -> None:
    """Delete every output of this run (after a failure), then the folders left empty."""
    for job in jobs:
        for out in job.dests:
            Path(out).unlink(missing_ok=True)
    for name in ("imagesTr", "labelsTr", "imagesTs"):
        folder = dest / name
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def convert_dataset(src: str | Path, dest: str | Path, format_name: str = "auto", overwrite: bool = False,
                    num_workers: int = 1) -> dict:
    """Convert an MSD/BraTS folder into the raw layout at dest; return the written dataset.json."""
    src, dest = Path(src), Path(dest)
    if not src.is_dir():
        raise UserError("source folder not found", src)
    if format_name == "auto":
        format_name = detect_format(src)
    _check_destination(src, dest, overwrite)
    jobs, dataset_json = plan_conversion(src, dest, format_name)
    _refuse_colliding_outputs(jobs, src)
    dest.mkdir(parents=True, exist_ok=True)
    _clear_layout(dest)
    try:
        errors = [e for e in parallel_map(run_job, jobs, num_workers, desc=f"convert {format_name}", unit="file") if e]
        if errors:
            message, path = errors[0]
            more = f" (and {len(errors) - 1} more file(s) failed)" if len(errors) > 1 else ""
            raise UserError(message + more, path)
        write_json(dest / "dataset.json", dataset_json)
    except BaseException:
        _remove_outputs(dest, jobs)
        raise
    return dataset_json


def _refuse_colliding_outputs(jobs: list[FileJob], src: Path) -> None:
    """Refuse inputs that would write the same output file twice (e.g. X.nii and X.nii.gz)."""
    writers: dict[str, str] = {}
    for job in jobs:
        for out in job.dests:
            if out in writers:
                raise UserError(f"two inputs map to the same output {Path(out).name} "
                                f"({Path(writers[out]).name} and {Path(job.src).name})", src)
            writers[out] = job.src
