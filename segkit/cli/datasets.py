"""Dataset arguments as nnU-Net users type them: a folder, `-d 1`, `1`, `Dataset001_Name` or `Name`.

A value that is not an existing folder is looked up in $SEGKIT_RAW, then $nnUNet_raw:
an ID matches `DatasetXXX_*` (XXX zero-padded to three digits), a name matches the folder
itself or `DatasetXXX_<name>`; a work folder segkit wrote never matches.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from segkit.errors import UserError
from segkit.workdir import is_work_folder, raw_roots

DATASET_FOLDER = re.compile(r"^Dataset(?P<id>\d{3,})_(?P<name>.+)$")


def add_dataset_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """A positional DATASET (optional when -d is given) plus -d/--dataset-id."""
    parser.add_argument("dataset", nargs="?", help=f"{help_text}; or an ID / DatasetXXX_Name found in "
                                                   "$SEGKIT_RAW or $nnUNet_raw")
    parser.add_argument("-d", "--dataset-id", metavar="ID",
                        help="dataset ID or DatasetXXX_Name, looked up in $SEGKIT_RAW then $nnUNet_raw")
    parser.set_defaults(resolve_dataset=True)


def _matches(folder: Path, key: str) -> bool:
    """Does a raw folder answer to an ID ('1', '001') or a name ('Dataset001_X', 'X')? Work folders never do."""
    if is_work_folder(folder):
        return False
    match = DATASET_FOLDER.match(folder.name)
    if key.isdigit():
        return match is not None and int(match["id"]) == int(key)
    return folder.name == key or (match is not None and match["name"] == key)


def resolve_dataset(value: str | None, dataset_id: str | None) -> str:
    """The dataset folder for a path, an ID or a DatasetXXX_Name; UserError naming where it looked."""
    if value and dataset_id:
        raise UserError(f"give the dataset once: either {value!r} or -d {dataset_id}")
    key = value or dataset_id
    if not key:
        raise UserError("which dataset? give a folder, or -d ID / DatasetXXX_Name with $nnUNet_raw or $SEGKIT_RAW set")
    if Path(key).is_dir():
        return key
    roots = raw_roots()
    explicit = dataset_id is not None or key.isdigit() or bool(DATASET_FOLDER.match(key))
    for _, root in roots:
        if not root.is_dir():
            continue
        found = sorted(p for p in root.iterdir() if p.is_dir() and _matches(p, key))
        if len(found) > 1:
            raise UserError(f"dataset {key!r} is ambiguous in {root}: {', '.join(p.name for p in found)}")
        if found:
            return str(found[0])
    if not explicit:
        return key   # an ordinary path: the command reports a missing folder its own way
    where = ", ".join(f"${name}={root}" for name, root in roots) or "$SEGKIT_RAW and $nnUNet_raw are not set"
    raise UserError(f"dataset {key!r} not found: not a folder, and no matching Dataset folder in {where}")
