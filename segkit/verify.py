"""Dataset integrity check: find every problem of a raw dataset at once (`segkit verify`).

verify_dataset(root) never stops at the first problem: dataset.json, the folder listing
and every case's files are all checked, and each problem becomes one Problem row
(case, file, problem). Other stages call it before they read a dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from segkit.errors import UserError
from segkit.io.dataset import CHANNEL_SUFFIX, DatasetInfo, load_dataset
from segkit.io.parallel import parallel_map
from segkit.jsonio import read_json
from segkit.verify_case import ORIENTATION_INFO, CaseCheck, Problem, check_case, relative_name

__all__ = ["Problem", "VerifyReport", "verify_dataset", "inspect_dataset", "format_table", "format_problems"]
REQUIRED_KEYS = ("channel_names", "labels", "file_ending")
DATASET = "-"   # the case column of problems that belong to the whole dataset


@dataclass
class VerifyReport:
    """Problems found plus what was checked (for the summary line)."""

    root: Path
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)   # information only (e.g. a case stored differently)
    num_training: int = 0
    num_test: int = 0
    num_channels: int = 0

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def verify_dataset(root: str | Path, num_workers: int = 1) -> list[Problem]:
    """Every problem of the raw dataset at root (empty list: the dataset is usable)."""
    return inspect_dataset(root, num_workers).problems


def inspect_dataset(root: str | Path, num_workers: int = 1) -> VerifyReport:
    """Check a raw dataset completely; return the problems and the case counts."""
    root = Path(root)
    report = VerifyReport(root)
    if not root.is_dir():
        report.problems.append(Problem(DATASET, str(root), "dataset folder not found"))
        return report
    info = _dataset_info(root, report.problems)
    tasks: list[CaseCheck] = []
    for images_dir, labels_dir in (("imagesTr", "labelsTr"), ("imagesTs", None)):
        split_tasks = _split_cases(info, images_dir, labels_dir, report.problems)
        tasks += split_tasks
        if labels_dir:
            report.num_training = len(split_tasks)
        else:
            report.num_test = len(split_tasks)
    if report.num_training == 0 and (root / "imagesTr").is_dir():
        report.problems.append(Problem(DATASET, "imagesTr", f"no training cases found (expected files named "
                                       f"CASE_0000{info.file_ending}; convert MSD/BraTS folders with segkit convert)"))
    declared_count = info.raw.get("numTraining")
    if isinstance(declared_count, int) and declared_count != report.num_training:
        report.problems.append(Problem(DATASET, "dataset.json", f"numTraining is {declared_count} but imagesTr "
                                       f"holds {report.num_training} case(s)"))
    report.num_channels = info.num_channels
    found = [p for case_problems in parallel_map(check_case, tasks, num_workers, desc="verify", unit="case")
             for p in case_problems]
    report.problems.extend(p for p in found if p.severity != "info")
    report.notes = orientation_notes([p for p in found if p.problem.startswith(ORIENTATION_INFO)])
    report.problems.sort(key=lambda p: (p.case != DATASET, p.case, p.file, p.problem))
    return report


def orientation_notes(orientations: list[Problem]) -> list[Problem]:
    """Information rows for cases stored in another orientation than most of the dataset."""
    codes = [p.problem[len(ORIENTATION_INFO):] for p in orientations]
    if not codes:
        return []
    common = max(sorted(set(codes)), key=codes.count)
    return sorted(Problem(p.case, p.file, f"stored {code}, most cases are {common} ({codes.count(common)} of "
                          f"{len(codes)}); fine: segkit reorients every image to LPS", "info")
                  for p, code in zip(orientations, codes) if code != common)


def _dataset_info(root: Path, problems: list[Problem]) -> DatasetInfo:
    """Load dataset.json, recording its problems; fall back to what the files imply."""
    json_path = root / "dataset.json"
    try:
        data = read_json(json_path, "dataset.json")
        missing = [key for key in REQUIRED_KEYS if not isinstance(data, dict) or key not in data]
        if isinstance(data, dict) and missing:
            hint = " (MSD 'modality' found: run segkit convert first)" if "modality" in data else ""
            problems.append(Problem(DATASET, "dataset.json", f"missing key(s) {', '.join(missing)}{hint}"))
        info = load_dataset(root)
        _check_listed_paths(info, problems)
        _check_regions(info, problems)
        return info
    except UserError as err:
        message = str(err)
        prefix = f"{err.path}: "
        problems.append(Problem(DATASET, "dataset.json", message[len(prefix):] if message.startswith(prefix) else message))
    except (ValueError, TypeError, AttributeError) as err:   # load_dataset lets some malformed values through
        problems.append(Problem(DATASET, "dataset.json", f"malformed entry ({type(err).__name__}: {err})"))
    return _fallback_info(root)


def _fallback_info(root: Path) -> DatasetInfo:
    """A DatasetInfo inferred from the file names, used when dataset.json is unusable."""
    data = {}
    try:
        data = read_json(root / "dataset.json")
    except UserError:
        pass
    ending = data.get("file_ending") if isinstance(data, dict) else None
    ending = ending if isinstance(ending, str) and ending.startswith(".") else ".nii.gz"
    channels = set()
    for folder in (root / "imagesTr", root / "imagesTs"):
        if folder.is_dir():
            for path in folder.iterdir():
                match = CHANNEL_SUFFIX.match(path.name[: -len(ending)]) if path.name.endswith(ending) else None
                if match:
                    channels.add(int(match["channel"]))
    num_channels = max(channels) + 1 if channels else 1
    return DatasetInfo(root=root, name=root.name, channel_names={str(i): str(i) for i in range(num_channels)},
                       labels={}, file_ending=ending)


def _check_regions(info: DatasetInfo, problems: list[Problem]) -> None:
    """Report a regions_class_order that does not give one declared label value per region."""
    order = info.regions_class_order
    if not info.region_based or not order:
        return
    if len(order) != len(info.regions):
        problems.append(Problem(DATASET, "dataset.json", f"regions_class_order has {len(order)} entries but "
                                f"'labels' declares {len(info.regions)} regions"))
    undeclared = [v for v in order if v not in info.foreground_labels]
    if undeclared:
        problems.append(Problem(DATASET, "dataset.json",
                                f"regions_class_order values {undeclared} are not declared foreground labels"))


def _check_listed_paths(info: DatasetInfo, problems: list[Problem]) -> None:
    """Report every path listed in dataset.json ('training', 'test') that escapes the dataset folder."""
    root = info.root.resolve()
    for key in ("training", "test"):
        entries = info.raw.get(key)
        for entry in entries if isinstance(entries, list) else []:
            values = entry.values() if isinstance(entry, dict) else [entry]
            for value in values:
                for relative in value if isinstance(value, list) else [value]:
                    if isinstance(relative, str) and not _inside(root, info.root / relative):
                        problems.append(Problem(DATASET, "dataset.json",
                                                f"'{key}' path {relative!r} escapes the dataset folder"))


def _inside(root: Path, path: Path) -> bool:
    """True when path resolves inside root."""
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _split_cases(info: DatasetInfo, images_dir: str, labels_dir: str | None, problems: list[Problem]) -> list[CaseCheck]:
    """Cases of one split from the folder listing; records naming/listing problems."""
    root, ending = info.root, info.file_ending
    folder = root / images_dir
    if not folder.is_dir():
        if labels_dir:
            problems.append(Problem(DATASET, images_dir, "folder not found"))
        return []
    channels = _channel_files(folder, ending, info.num_channels, problems)
    labels = _label_files(root / labels_dir, ending, problems) if labels_dir else {}
    if labels_dir and not (root / labels_dir).is_dir():
        problems.append(Problem(DATASET, labels_dir, "folder not found"))
    declared = tuple(info.label_values) if info.labels else None
    tasks = []
    for case_id in sorted(channels):
        images = tuple(str(folder / f"{case_id}_{c:04d}{ending}") for c in range(info.num_channels))
        label = str(root / labels_dir / f"{case_id}{ending}") if labels_dir else None
        tasks.append(CaseCheck(str(root), case_id, images, label, declared, info.ignore_label))
    for case_id in sorted(set(labels) - set(channels)):
        problems.append(Problem(case_id, relative_name(root, labels[case_id]), "label file without images"))
    return tasks


def _channel_files(folder: Path, ending: str, num_channels: int, problems: list[Problem]) -> dict[str, set[int]]:
    """Channel indices present per case; reports files that do not fit CASE_XXXX<ending>."""
    by_case: dict[str, set[int]] = {}
    root = folder.parent
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        match = CHANNEL_SUFFIX.match(path.name[: -len(ending)]) if path.name.endswith(ending) else None
        if not match:
            problems.append(Problem(DATASET, relative_name(root, path),
                                    f"file name does not match CASE_XXXX{ending} (one file per channel)"))
            continue
        channel = int(match["channel"])
        by_case.setdefault(match["case"], set()).add(channel)
        if channel >= num_channels:
            problems.append(Problem(match["case"], relative_name(root, path),
                                    f"channel {channel} is not declared (dataset.json has {num_channels} channel(s))"))
    return by_case


def _label_files(folder: Path, ending: str, problems: list[Problem]) -> dict[str, Path]:
    """Label files per case id; reports files without the dataset's file ending."""
    if not folder.is_dir():
        return {}
    labels = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if not path.name.endswith(ending):
            problems.append(Problem(DATASET, relative_name(folder.parent, path),
                                    f"file does not end in {ending} (the dataset's file_ending)"))
            continue
        labels[path.name[: -len(ending)]] = path
    return labels


def format_table(problems: list[Problem]) -> str:
    """Problems as an aligned text table with the columns case, file, problem."""
    rows = [("case", "file", "problem")] + [(p.case, p.file, p.problem) for p in problems]
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]}" for r in rows]
    lines.insert(1, f"{'-' * widths[0]}  {'-' * widths[1]}  {'-' * 7}")
    return "\n".join(lines)


format_problems = format_table   # the name the planner's --verify uses
