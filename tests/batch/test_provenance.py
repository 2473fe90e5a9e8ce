"""CASE_provenance.json: the input's content digest, and the check that outputs were made from the input there now."""

from __future__ import annotations

import pytest

from segkit.batch.provenance import FORMAT, input_digest, provenance_problem, provenance_record, write_provenance
from segkit.errors import UserError


def test_the_digest_follows_content_and_order_not_names(tmp_path) -> None:
    a, b, c = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", tmp_path / "c.nii.gz"
    a.write_bytes(b"T1 voxels")
    b.write_bytes(b"FLAIR voxels")
    c.write_bytes(b"T1 voxels")
    assert input_digest([a, b]) == input_digest([c, b])       # same bytes under another name
    assert input_digest([a, b]) != input_digest([b, a])       # channel order matters
    with pytest.raises(UserError, match="cannot read input file") as err:
        input_digest([tmp_path / "gone.nii.gz"])
    assert err.value.path == str(tmp_path / "gone.nii.gz")


def test_outputs_are_kept_only_for_the_input_they_were_made_from(tmp_path) -> None:
    image = tmp_path / "c01_0000.nii.gz"
    image.write_bytes(b"patient A")
    record_path = tmp_path / "c01_provenance.json"
    digest = input_digest([image])
    record = provenance_record("c01", [image], digest)
    assert record["format"] == FORMAT and record["inputs"] == [{"file": "c01_0000.nii.gz", "bytes": 9}]
    assert record["dicom"] is None
    write_provenance(record_path, record)
    assert provenance_problem(record_path, digest) is None
    image.write_bytes(b"patient B")                                 # another patient copied over it
    assert "input changed" in provenance_problem(record_path, input_digest([image]))
    record_path.write_text('{"format": "other"}')
    assert "is not a segkit-provenance-1 record" in provenance_problem(record_path, digest)
    record_path.write_text("{")
    assert provenance_problem(record_path, digest) == "c01_provenance.json is unreadable"
