"""Sending a result (segkit.pacs.send): C-STORE to a real Orthanc lands the instance; a peer that cannot be reached is
an `unreachable` SendError (retried by the node), which a rejection is not."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pacs_helpers import free_port

from segkit.io.dicom_write import write_dicom_series
from segkit.io.image import Geometry
from segkit.pacs.config import NodeConfig, Peer
from segkit.pacs.send import SendError, store_file

GEOMETRY = Geometry((0.8, 0.8, 2.0), (0.0, 0.0, 0.0), tuple(np.eye(3).ravel()), (8, 6, 2))


def _config(tmp_path) -> NodeConfig:
    return NodeConfig(path=tmp_path / "node.toml", ae_title="SEGKIT", port=free_port(), storage=tmp_path / "storage")


def test_a_stored_instance_is_in_the_pacs(orthanc, tmp_path):
    path = write_dicom_series(np.arange(96, dtype=np.float32).reshape(2, 6, 8), GEOMETRY, tmp_path, "sent")[0]
    store_file(_config(tmp_path), Peer(orthanc.aet, "127.0.0.1", orthanc.dicom_port), path)
    uid = pydicom.dcmread(path).SOPInstanceUID
    found = orthanc.request("POST", "/tools/lookup", raw=uid.encode())
    assert [item["Type"] for item in found] == ["Instance"]


def test_a_peer_nobody_listens_on_is_unreachable(tmp_path):
    path = write_dicom_series(np.zeros((2, 6, 8), np.float32), GEOMETRY, tmp_path, "lost")[0]
    with pytest.raises(SendError, match=r"association with PACS at 127\.0\.0\.1:\d+ (aborted|unreachable)") as error:
        store_file(_config(tmp_path), Peer("PACS", "127.0.0.1", free_port()), path)
    assert error.value.unreachable
    assert not SendError("status 0xA700").unreachable     # a refusal of the result is counted against its attempts
