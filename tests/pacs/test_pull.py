"""Nightly pull against a real Orthanc: C-FIND/C-MOVE and QIDO/WADO/STOW; a repeated run processes nothing."""

from __future__ import annotations

import json

import pytest
from pacs_helpers import dicomweb_plugin, free_port, node_config, write_series

from segkit.cli import main

pytest.importorskip("pynetdicom", reason="the pacs extra (pynetdicom) is not installed")


def _upload(orthanc, tmp_path, tag: str, count: int) -> dict[str, str]:
    """count matching series ('<tag> T1') plus one that must not match ('<tag> FLAIR'); uid -> Orthanc id."""
    matching = {}
    for seed in range(count):
        uid, files = write_series(tmp_path / f"{tag}{seed}", 200 + seed, f"{tag} T1")
        matching[uid] = orthanc.upload_series(files)
    _, files = write_series(tmp_path / f"{tag}flair", 299, f"{tag} FLAIR")
    orthanc.upload_series(files)
    return matching


def _pull(config, capsys, *flags) -> dict:
    """Run `segkit pull`; its JSON summary."""
    capsys.readouterr()
    assert main(["pull", "--config", str(config), "--modality", "MR", *flags]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_a_c_find_c_move_pull_processes_the_matches_once(tmp_path, orthanc, one_channel_model, capsys):
    matching = _upload(orthanc, tmp_path, "CMOVE", 3)
    port = free_port()
    # Orthanc finds a C-MOVE destination by AE title: one title per node on the session's Orthanc
    config = node_config(tmp_path / "node.toml", tmp_path / "storage", port, one_channel_model, orthanc,
                         ae_title="PULLNODE")
    orthanc.add_modality("puller", "PULLNODE", port)
    first = _pull(config, capsys, "--description", "CMOVE T1*")
    assert first == {"found": 3, "skipped_already_processed": 0, "retrieved": 3, "states": {"done": 3}}
    references = orthanc.seg_references()
    assert {uid: len(references.get(uid, [])) for uid in matching} == dict.fromkeys(matching, 1)
    again = _pull(config, capsys, "--description", "CMOVE T1*")
    assert again == {"found": 3, "skipped_already_processed": 3, "retrieved": 0, "states": {"done": 3}}


@pytest.mark.slow
def test_a_dicomweb_pull_stores_back_by_stow_and_processes_the_matches_once(tmp_path, orthanc, one_channel_model,
                                                                           capsys):
    if dicomweb_plugin() is None:
        pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)")
    matching = _upload(orthanc, tmp_path, "WEB", 2)
    config = node_config(tmp_path / "node.toml", tmp_path / "storage", free_port(), one_channel_model, None)
    text = config.read_text().replace("min_free_mb = 1", 'min_free_mb = 1\npush = "dicomweb"')
    config.write_text(text + f'\n[dicomweb]\nurl = "{orthanc.url}/dicom-web"\n')
    first = _pull(config, capsys, "--dicomweb", "--description", "WEB T1*")
    assert first == {"found": 2, "skipped_already_processed": 0, "retrieved": 2, "states": {"done": 2}}
    references = orthanc.seg_references()
    assert {uid: len(references.get(uid, [])) for uid in matching} == dict.fromkeys(matching, 1)
    again = _pull(config, capsys, "--dicomweb", "--description", "WEB T1*")
    assert again["retrieved"] == 0 and again["skipped_already_processed"] == 2
