"""Plan the conversion of BraTS challenge folders (2021 and 2023+) into the raw layout.

BraTS 2021: ``BraTS2021_XXXXX/BraTS2021_XXXXX_{flair,t1,t1ce,t2,seg}.nii.gz``, labels
0/1/2/4. BraTS 2023+: ``BraTS-GLI-XXXXX-XXX/BraTS-GLI-XXXXX-XXX-{t2f,t1n,t1c,t2w,seg}.nii.gz``
(also BraTS-MEN, -PED, -SSA, -MET, ...), labels 0/1/2/3. Both become the same dataset:

    channels  0 FLAIR (flair / t2f), 1 T1 (t1 / t1n), 2 T1ce (t1ce / t1c), 3 T2 (t2 / t2w)
    labels    1 necrosis (NCR), 2 edema (ED), 3 enhancing tumour (ET)   (2021's 4 -> 3)

and is trained on the challenge's overlapping regions (whole tumour, tumour core,
enhancing tumour). ``segkit_source`` records the original convention for the export stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from segkit.errors import UserError
from segkit.io.convert_files import FileJob
from segkit.io.image import image_suffix

OUTPUT_ENDING = ".nii.gz"
CHANNEL_NAMES = ("FLAIR", "T1", "T1ce", "T2")
REGION_LABELS = {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [1, 3], "enhancing tumor": [3]}
# painting whole tumour as 2 (edema), then tumour core as 1 (necrosis), then enhancing as 3
# reproduces the three tissue labels from the three overlapping region outputs
REGIONS_CLASS_ORDER = [2, 1, 3]
TISSUE_NAMES = {"1": "NCR (necrosis)", "2": "ED (edema)", "3": "ET (enhancing tumour)"}


@dataclass(frozen=True)
class BratsFormat:
    """File naming and label values of one BraTS generation."""

    name: str
    separator: str
    channel_suffixes: tuple[str, ...]
    label_suffix: str
    original_labels: tuple[int, int, int]   # original values of NCR, ED, ET

    @property
    def value_map(self) -> dict[int, int]:
        """Original label value -> stored consecutive value."""
        return {0: 0, **{original: stored for stored, original in enumerate(self.original_labels, start=1)}}

    @property
    def case_pattern(self) -> str:
        """Where a case's files live, relative to the dataset root."""
        return "{case}/{case}" + self.separator + "{suffix}" + OUTPUT_ENDING


BRATS_FORMATS = {
    "brats2021": BratsFormat("brats2021", "_", ("flair", "t1", "t1ce", "t2"), "seg", (1, 2, 4)),
    "brats2023": BratsFormat("brats2023", "-", ("t2f", "t1n", "t1c", "t2w"), "seg", (1, 2, 3)),
}


def case_folders(src: Path) -> list[Path]:
    """Visible sub-folders of a BraTS root, sorted (top-level files such as CSVs are ignored)."""
    return sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))


def brats_flavour(folder: Path) -> str | None:
    """Which BraTS format a case folder's file names follow, or None if neither."""
    for name, fmt in BRATS_FORMATS.items():
        expected = f"{folder.name}{fmt.separator}{fmt.channel_suffixes[0]}"
        if any(p.name.startswith(expected) and image_suffix(p) for p in folder.iterdir()):
            return name
    return None


def _case_files(folder: Path, fmt: BratsFormat) -> tuple[list[Path], Path | None]:
    """Channel files (in channel order) and the optional seg file of one case folder."""
    by_suffix: dict[str, Path] = {}
    prefix = folder.name + fmt.separator
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        ending = image_suffix(path)
        if not ending or not path.name.startswith(prefix):
            raise UserError(f"unexpected file in a {fmt.name} case folder; expected "
                            f"{prefix}<suffix>.nii.gz", path)
        suffix = path.name[len(prefix): -len(ending)]
        if suffix not in fmt.channel_suffixes + (fmt.label_suffix,):
            raise UserError(f"unknown suffix {suffix!r}; {fmt.name} uses "
                            f"{', '.join(fmt.channel_suffixes + (fmt.label_suffix,))}", path)
        if suffix in by_suffix:
            raise UserError(f"two files for suffix {suffix!r} ({by_suffix[suffix].name})", path)
        by_suffix[suffix] = path
    channels = []
    for suffix in fmt.channel_suffixes:
        if suffix not in by_suffix:
            raise UserError(f"missing channel file ({suffix})", folder / f"{prefix}{suffix}{OUTPUT_ENDING}")
        channels.append(by_suffix[suffix])
    return channels, by_suffix.get(fmt.label_suffix)


def plan_brats(src: Path, dest: Path, format_name: str) -> tuple[list[FileJob], dict]:
    """Jobs and the new dataset.json for a BraTS folder (validates names, reads no voxels)."""
    fmt = BRATS_FORMATS[format_name]
    folders = case_folders(src)
    if not folders:
        raise UserError(f"no case folders found for {format_name}", src)
    jobs: list[FileJob] = []
    num_training = num_test = 0
    for folder in folders:
        channels, seg = _case_files(folder, fmt)
        split = "Tr" if seg is not None else "Ts"
        for index, channel in enumerate(channels):
            out = dest / f"images{split}" / f"{folder.name}_{index:04d}{OUTPUT_ENDING}"
            jobs.append(FileJob("copy", str(channel), (str(out),)))
        if seg is not None:
            jobs.append(FileJob("label", str(seg), (str(dest / "labelsTr" / f"{folder.name}{OUTPUT_ENDING}"),),
                                tuple(fmt.value_map.items()), fmt.name))
            num_training += 1
        else:
            num_test += 1
    return jobs, brats_dataset_json(fmt, src.name, num_training, num_test)


def brats_dataset_json(fmt: BratsFormat, name: str, num_training: int, num_test: int) -> dict:
    """The region-based dataset.json written for a converted BraTS folder."""
    return {
        "name": name,
        "description": f"{fmt.name} converted by segkit convert; labels 1 NCR, 2 ED, 3 ET",
        "channel_names": {str(i): channel for i, channel in enumerate(CHANNEL_NAMES)},
        "labels": dict(REGION_LABELS),
        "regions_class_order": list(REGIONS_CLASS_ORDER),
        "file_ending": OUTPUT_ENDING,
        "numTraining": num_training,
        "numTest": num_test,
        "segkit_source": {
            "format": fmt.name,
            "label_map": {str(stored): original for stored, original in enumerate(fmt.original_labels, start=1)},
            "tissue_names": dict(TISSUE_NAMES),
            "channel_suffixes": list(fmt.channel_suffixes),
            "label_suffix": fmt.label_suffix,
            "case_pattern": fmt.case_pattern,
            "prediction_pattern": "{case}" + OUTPUT_ENDING,
        },
    }

