"""Sending a result (segkit.pacs.send): C-STORE to a real Orthanc lands the instance; a peer that cannot be reached is
an `unreachable` SendError (retried by the node), which a rejection is not; a refused connection is told apart from an
aborted association."""

from __future__ import annotations

import socket
import threading

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


def test_a_peer_nobody_listens_on_is_a_refused_connection_not_an_aborted_association(tmp_path):
    path = write_dicom_series(np.zeros((2, 6, 8), np.float32), GEOMETRY, tmp_path, "lost")[0]
    port = free_port()
    with pytest.raises(SendError, match=rf"could not connect to PACS: connection refused by 127\.0\.0\.1:{port} ") as error:
        store_file(_config(tmp_path), Peer("PACS", "127.0.0.1", port), path)
    assert "abort" not in str(error.value)
    assert error.value.unreachable                        # retried until the destination returns, as before
    assert not SendError("status 0xA700").unreachable     # a refusal of the result is counted against its attempts


def test_a_peer_that_drops_the_connection_is_an_aborted_association(tmp_path):
    path = write_dicom_series(np.zeros((2, 6, 8), np.float32), GEOMETRY, tmp_path, "dropped")[0]
    with socket.create_server(("127.0.0.1", 0)) as server:       # takes the TCP connection, then hangs up
        port = server.getsockname()[1]
        hang_up = threading.Thread(target=lambda: server.accept()[0].close(), daemon=True)
        hang_up.start()
        with pytest.raises(SendError, match=rf"association with PACS at 127\.0\.0\.1:{port} aborted") as error:
            store_file(_config(tmp_path), Peer("PACS", "127.0.0.1", port), path)
        hang_up.join(5)
    assert error.value.unreachable and "refused" not in str(error.value)
