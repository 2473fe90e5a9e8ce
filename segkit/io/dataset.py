"""The canonical raw dataset layout (nnU-Net v2 style) and how to list its cases.

    DATASET/
      dataset.json          channel_names, labels, file_ending, optional regions_class_order
      imagesTr/CASE_0000.nii.gz, CASE_0001.nii.gz, ...   (one file per channel)
      labelsTr/CASE.nii.gz
      imagesTs/...          (optional)

``labels`` maps a name to an integer label value, or (region-based datasets such as
BraTS) to a list of label values forming an overlapping region. A label named ``ignore``
(nnU-Net's convention) marks unannotated voxels: an integer, the highest label value, never an
output class; its voxels are left out of losses and scores (docs/sparse-annotation.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from segkit.errors import UserError
from segkit.io.image import SUPPORTED_SUFFIXES
from segkit.jsonio import read_json

CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
IGNORE_NAME = "ignore"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: one image per channel (in channel order) and an optional label."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None = None


@dataclass
class DatasetInfo:
    """What dataset.json declares, plus the dataset's folder."""

    root: Path
    name: str
    channel_names: dict[str, str]
    labels: dict[str, int | list[int]]
    file_ending: str
    regions_class_order: list[int] | None = None
    raw: dict = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        """Number of image channels per case."""
        return len(self.channel_names)

    @property
    def region_based(self) -> bool:
        """True when some label entry is a list of values (an overlapping region)."""
        return any(isinstance(value, list) for value in self.labels.values())

    @property
    def label_values(self) -> list[int]:
        """Every integer value a label map of this dataset may contain, sorted."""
        values: set[int] = set()
        for value in self.labels.values():
            values.update(value if isinstance(value, list) else [value])
        return sorted(values)

    @property
    def ignore_label(self) -> int | None:
        """The label value marking unannotated voxels (the label named 'ignore'), or None."""
        value = self.labels.get(IGNORE_NAME)
        return int(value) if isinstance(value, int) else None

    @property
    def annotation_labels(self) -> dict[str, int | list[int]]:
        """The labels without the ignore entry: the classes a label map can annotate."""
        return {name: value for name, value in self.labels.items() if name != IGNORE_NAME}

    @property
    def foreground_labels(self) -> list[int]:
        """Declared non-background label values (the ignore value excluded)."""
        return [value for value in self.label_values if value not in (0, self.ignore_label)]

    @property
    def regions(self) -> dict[str, list[int]]:
        """Foreground classes (or regions) as name -> label values; the network's outputs, in order."""
        out: dict[str, list[int]] = {}
        for name, value in self.annotation_labels.items():
            values = value if isinstance(value, list) else [value]
            if values != [0]:
                out[name] = [int(v) for v in values]
        return out

    @property
    def channel_list(self) -> list[str]:
        """Channel names in channel order."""
        return [self.channel_names[key] for key in sorted(self.channel_names, key=int)]


def _check_labels(labels: object, path: Path) -> dict[str, int | list[int]]:
    """Validate the 'labels' entry of dataset.json."""
    if not isinstance(labels, dict) or not labels:
        raise UserError("'labels' must be a non-empty mapping of name to label value", path)
    checked: dict[str, int | list[int]] = {}
    for name, value in labels.items():
        if isinstance(value, bool) or not (isinstance(value, int) or (
                isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value))):
            raise UserError(f"label {name!r} must be an integer or a list of integers, got {value!r}", path)
        checked[str(name)] = value
    if 0 not in [v for v in checked.values() if isinstance(v, int)]:
        raise UserError("'labels' must declare background as 0", path)
    _check_ignore(checked, path)
    return checked


def _check_ignore(labels: dict[str, int | list[int]], path: Path) -> None:
    """nnU-Net's rules for the 'ignore' label: one integer, not 0, higher than every other label value."""
    if IGNORE_NAME not in labels:
        return
    value = labels[IGNORE_NAME]
    if not isinstance(value, int) or value == 0:
        raise UserError(f"label 'ignore' must be one non-zero integer label value, got {value!r}", path)
    others = {v for name, entry in labels.items() if name != IGNORE_NAME
              for v in (entry if isinstance(entry, list) else [entry])}
    if value in others or value < max(others):
        raise UserError(f"label 'ignore' ({value}) must be the highest label value, above {max(others)} "
                        "(nnU-Net's rule)", path)


def load_dataset(root: str | Path) -> DatasetInfo:
    """Read DATASET/dataset.json into a DatasetInfo, with clear errors for a malformed file."""
    root = Path(root)
    if not root.is_dir():
        raise UserError("dataset folder not found", root)
    json_path = root / "dataset.json"
    data = read_json(json_path, "dataset.json")
    if not isinstance(data, dict):
        raise UserError("must hold a JSON object", json_path)
    if "channel_names" not in data and "modality" in data and isinstance(data.get("training"), list):
        raise UserError(f"this is a Medical Segmentation Decathlon task folder (dataset.json lists 'modality' and "
                        f"'training'); convert it first: segkit convert {root} OUT --format msd", json_path)
    channel_names = data.get("channel_names", data.get("modality"))
    if not isinstance(channel_names, dict) or not channel_names:
        raise UserError("'channel_names' is missing or empty", json_path)
    if not all(str(k).isdigit() for k in channel_names) or \
            sorted(int(k) for k in channel_names) != list(range(len(channel_names))):
        raise UserError("'channel_names' keys must be 0, 1, ... without gaps", json_path)
    file_ending = data.get("file_ending", ".nii.gz")
    if not isinstance(file_ending, str) or not file_ending.startswith("."):
        raise UserError(f"'file_ending' must look like '.nii.gz', got {file_ending!r}", json_path)
    if file_ending.lower() not in SUPPORTED_SUFFIXES:   # the formats predict accepts too
        raise UserError(f"'file_ending' {file_ending!r} is not a supported image format "
                        f"({', '.join(SUPPORTED_SUFFIXES)})", json_path)
    labels = _check_labels(data.get("labels"), json_path)
    order = data.get("regions_class_order")
    if order is not None and (not isinstance(order, list) or
                              not all(isinstance(v, int) and not isinstance(v, bool) for v in order)):
        raise UserError(f"'regions_class_order' must be a list of integers, got {order!r}", json_path)
    info = DatasetInfo(root=root, name=str(data.get("name", root.name)),
                       channel_names={str(k): str(v) for k, v in channel_names.items()},
                       labels=labels, file_ending=file_ending,
                       regions_class_order=[int(v) for v in order] if order else None, raw=data)
    if info.region_based and not info.regions_class_order:
        raise UserError("region-based 'labels' need 'regions_class_order'", json_path)
    return info


def _inside(root: Path, path: Path) -> bool:
    """True when path resolves to a location inside root."""
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def list_cases(info: DatasetInfo, images_dir: str = "imagesTr", labels_dir: str | None = "labelsTr") -> list[CaseFiles]:
    """List the cases of a split by scanning its images folder (channel files CASE_XXXX)."""
    folder = info.root / images_dir
    if not folder.is_dir():
        raise UserError(f"folder '{images_dir}' not found in the dataset", info.root)
    by_case = group_channel_files(folder, info.file_ending)
    cases = []
    for case_id, channel_files in sorted(by_case.items()):
        images = tuple(channel_files.get(c, folder / f"{case_id}_{c:04d}{info.file_ending}")
                       for c in range(info.num_channels))
        label = info.root / labels_dir / f"{case_id}{info.file_ending}" if labels_dir else None
        cases.append(CaseFiles(case_id, images, label))
    return cases


def group_channel_files(folder: Path, file_ending: str) -> dict[str, dict[int, Path]]:
    """Group CASE_XXXX<ending> files in a folder by case id, then channel index."""
    by_case: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.name.endswith(file_ending) or path.name.startswith("."):
            continue
        match = CHANNEL_SUFFIX.match(path.name[: -len(file_ending)])
        if match:
            by_case.setdefault(match["case"], {})[int(match["channel"])] = path
    return by_case


def training_cases(info: DatasetInfo) -> list[CaseFiles]:
    """Training cases with labels; honours an explicit 'training' list in dataset.json if present."""
    explicit = info.raw.get("training")
    if isinstance(explicit, list) and explicit and isinstance(explicit[0], dict) and "image" in explicit[0]:
        return _cases_from_training_list(info, explicit)
    return list_cases(info)


def _cases_from_training_list(info: DatasetInfo, entries: list[dict]) -> list[CaseFiles]:
    """Cases from a 'training' list whose entries name each channel file and the label explicitly."""
    json_path = info.root / "dataset.json"
    cases = []
    for entry in entries:
        images = entry.get("image")
        images = [images] if isinstance(images, str) else images
        if not images:
            raise UserError("a training/test entry has no 'image'", json_path)
        label = entry.get("label")
        paths = [info.root / p for p in images] + ([info.root / label] if label else [])
        for path in paths:
            if not _inside(info.root, path):
                raise UserError(f"path {path} escapes the dataset folder", json_path)
        name = Path(images[0]).name
        case_id = name[: -len(info.file_ending)] if name.endswith(info.file_ending) else name
        suffix = CHANNEL_SUFFIX.match(case_id)
        case_id = suffix["case"] if suffix else case_id
        cases.append(CaseFiles(case_id, tuple(info.root / p for p in images), info.root / label if label else None))
    return cases
