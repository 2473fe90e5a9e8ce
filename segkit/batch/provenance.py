"""CASE_provenance.json: which input a case's outputs were computed from (owner of the file and its check).

A finished output is kept by ``--continue`` (and by the DICOM node) only when it was made from
the very input that is there now. Geometry alone cannot tell: another patient's series with the
same grid, copied into the same case folder, has it too. So every case's outputs get, written
just before the label map (which is written last and marks the case finished)::

    {"format": "segkit-provenance-1", "case_id": "c01",
     "input_sha256": "<sha256 over the input files' contents, in channel / slice order>",
     "inputs": [{"file": "c01_0000.nii.gz", "bytes": 123456}, ...],
     "dicom": null | {"study_instance_uid": "...", "series_instance_uids": ["<channel 0>", ...],
                      "sop_instance_uids": ["<channel 0's slices, in slice order>", ...]}}

`provenance_problem` recomputes the digest of the input as it is now and compares.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from segkit.errors import UserError
from segkit.io.dicom_series import SeriesIdentity
from segkit.jsonio import read_json, write_json

FORMAT = "segkit-provenance-1"
_CHUNK = 1 << 20


def input_digest(files: list[Path] | tuple[Path, ...]) -> str:
    """sha256 over the files' contents in order (each file's own sha256, so moved bytes change it)."""
    total = hashlib.sha256()
    for path in files:
        one = hashlib.sha256()
        try:
            with open(path, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    one.update(chunk)
        except OSError as err:
            raise UserError(f"cannot read input file ({err.strerror})", path) from None
        total.update(one.digest())
    return total.hexdigest()


def provenance_record(case_id: str, files: list[Path] | tuple[Path, ...], digest: str,
                      identity: SeriesIdentity | None = None, series_uids: tuple[str, ...] = ()) -> dict:
    """The JSON written beside a case's outputs."""
    dicom = None
    if identity is not None:
        dicom = {"study_instance_uid": identity.study_uid,
                 "series_instance_uids": list(series_uids or (identity.series_uid,)),
                 "sop_instance_uids": list(identity.sop_instance_uids)}
    return {"format": FORMAT, "case_id": case_id, "input_sha256": digest,
            "inputs": [{"file": Path(f).name, "bytes": Path(f).stat().st_size} for f in files], "dicom": dicom}


def write_provenance(path: Path, record: dict) -> None:
    """Write CASE_provenance.json atomically."""
    write_json(path, record)


def provenance_problem(path: Path, digest: str) -> str | None:
    """Why the outputs recorded at path were not made from the input whose digest is given (None when they were)."""
    try:
        record = read_json(path, "case provenance")
    except UserError:
        return f"{path.name} is unreadable"
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        return f"{path.name} is not a {FORMAT} record"
    if record.get("input_sha256") != digest:
        return "the input changed since its outputs were written (its content digest differs)"
    return None
