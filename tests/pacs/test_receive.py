"""The node's C-STORE handling (segkit.pacs.receive.Receiver.accept): an image stored durably and journalled before
success, non-images acknowledged and dropped, every bad instance its own error status, a full disk refused."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from segkit.io.dicom_write import write_dicom_series
from segkit.io.image import Geometry
from segkit.pacs.config import NodeConfig, Peer
from segkit.pacs.journal import Journal
from segkit.pacs.receive import (
    STATUS_CANNOT_UNDERSTAND,
    STATUS_DATASET_MISMATCH,
    STATUS_OUT_OF_RESOURCES,
    STATUS_SUCCESS,
    Receiver,
)
from segkit.pacs.store import Storage

GEOMETRY = Geometry((0.8, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()), (8, 6, 2))


@pytest.fixture
def node(tmp_path):
    """(receiver, storage, journal) of a node keeping series as units, and one written two-slice series."""
    storage = Storage(tmp_path / "storage")
    journal = Journal(tmp_path / "storage" / "journal.sqlite")
    config = NodeConfig(path=tmp_path / "node.toml", ae_title="SEGKIT", port=0, storage=storage.root,
                        min_free_mb=0.0, peers=(Peer("PACS"),))
    paths = write_dicom_series(np.ones((2, 6, 8), np.float32), GEOMETRY, tmp_path / "series", "in")
    yield Receiver(config, storage, journal, unit_by_study=False), storage, journal, paths
    journal.close()


def _accept(receiver: Receiver, path) -> int:
    return receiver.accept(lambda: pydicom.dcmread(path), lambda: path.read_bytes(), "PACS")


def test_an_image_is_written_as_received_and_journalled_before_success(node):
    receiver, storage, journal, paths = node
    for path in paths:
        assert _accept(receiver, path) == STATUS_SUCCESS
    first = pydicom.dcmread(paths[0])
    stored = storage.instance_path(first.StudyInstanceUID, first.SeriesInstanceUID, first.SOPInstanceUID)
    assert stored.read_bytes() == paths[0].read_bytes()
    assert sorted(journal.instance_uids(first.SeriesInstanceUID)) == sorted(
        pydicom.dcmread(p).SOPInstanceUID for p in paths)
    assert receiver.received == 2
    assert _accept(receiver, paths[0]) == STATUS_SUCCESS            # the same instance again: no new instance
    assert len(journal.instance_uids(first.SeriesInstanceUID)) == 2


def test_non_images_are_acknowledged_and_not_stored(node, tmp_path):
    receiver, storage, journal, paths = node
    report = pydicom.dcmread(paths[0])
    report.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"                   # Enhanced SR
    report.SOPInstanceUID = generate_uid()
    path = tmp_path / "sr.dcm"
    report.save_as(path)
    assert _accept(receiver, path) == STATUS_SUCCESS
    assert receiver.received == 0 and not journal.known(report.SeriesInstanceUID)


def test_bad_instances_get_their_own_error_status(node, tmp_path):
    receiver, _, journal, paths = node
    assert receiver.accept(lambda: (_ for _ in ()).throw(ValueError("garbage")), lambda: b"", "PACS") == \
        STATUS_CANNOT_UNDERSTAND
    no_series = pydicom.dcmread(paths[0])
    del no_series.SeriesInstanceUID
    assert receiver.accept(lambda: no_series, lambda: b"", "PACS") == STATUS_DATASET_MISMATCH
    bad_uid = pydicom.dcmread(paths[0])
    with pytest.warns(UserWarning, match="Invalid value for VR UI"):
        bad_uid.SOPInstanceUID = "1.2.abc"
    assert receiver.accept(lambda: bad_uid, lambda: b"", "PACS") == STATUS_DATASET_MISMATCH
    assert receiver.received == 0


def test_below_min_free_mb_every_instance_is_out_of_resources(node):
    receiver, storage, journal, paths = node
    full = Receiver(NodeConfig(path=receiver.config.path, ae_title="SEGKIT", port=0, storage=storage.root,
                               min_free_mb=storage.free_mb() * 10 + 1e9), storage, journal, unit_by_study=False)
    assert _accept(full, paths[0]) == STATUS_OUT_OF_RESOURCES
    assert full.received == 0 and not journal.known(pydicom.dcmread(paths[0]).SeriesInstanceUID)
