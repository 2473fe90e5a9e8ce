"""Fixtures of the DICOM node tests: a real Orthanc for the session, a tiny model folder."""

from __future__ import annotations

import pytest
from inference_fixtures import make_model_dir
from pacs_helpers import MISSING, ORTHANC_BINARY, Orthanc


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory):
    """One Orthanc for the session (tests tell their data apart by UIDs); skipped, saying why, when not installed."""
    if ORTHANC_BINARY is None:
        pytest.skip(MISSING)
    server = Orthanc(tmp_path_factory.mktemp("orthanc"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def one_channel_model(tmp_path_factory):
    """A tiny untrained one-channel 3d_fullres model folder (labels necrosis/edema/enhancing)."""
    return make_model_dir(tmp_path_factory.mktemp("model1"), num_channels=1)


@pytest.fixture(scope="session")
def two_channel_model(tmp_path_factory):
    """A tiny untrained two-channel model folder (channels ch0, ch1)."""
    return make_model_dir(tmp_path_factory.mktemp("model2"), num_channels=2)
