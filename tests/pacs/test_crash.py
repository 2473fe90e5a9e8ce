"""kill -9 at random moments during a 20-series run, then restart: every series gets exactly one SEG in Orthanc."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from pacs_helpers import free_port, node_config, wait_for, write_series

from segkit.io.dicom import read_series_folder
from segkit.io.dicom_seg import write_dicom_seg
from segkit.pacs.journal import Journal
from segkit.pacs.store import Storage

pytest.importorskip("pynetdicom", reason="the pacs extra (pynetdicom) is not installed")


def _serve(config, log):
    """`segkit serve` in a child process (what systemd runs)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen([sys.executable, "-m", "segkit", "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env=env)


def _listening(port: int) -> bool:
    """True once the node accepts TCP connections."""
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
def test_kill_9_at_five_random_moments_finishes_every_series_exactly_once(tmp_path, orthanc, one_channel_model):
    port = free_port()
    storage = tmp_path / "storage"
    config = node_config(tmp_path / "node.toml", storage, port, one_channel_model, orthanc, quiet=2.0)
    orthanc.add_modality("crash", "SEGKIT", port)
    foreign = _foreign_seg(tmp_path / "foreign", orthanc)
    series = {}
    for seed in range(20):
        uid, files = write_series(tmp_path / f"s{seed}", 100 + seed)
        series[uid] = orthanc.upload_series(files)
    rng = random.Random(28)
    log = open(tmp_path / "node.log", "ab")
    node = _serve(config, log)
    jobs: dict[str, str] = {}
    kills = []

    def resend_failed() -> bool:
        """What a PACS does: each series is one transfer job, and a job that failed is run again. True when all succeeded."""
        states = {uid: orthanc.get(f"/jobs/{job}")["State"] if job else "Failure" for uid, job in jobs.items()}
        for uid, state in states.items():
            if state == "Failure":
                jobs[uid] = orthanc.route("crash", [series[uid]], asynchronous=True)["ID"]
        return all(state == "Success" for state in states.values())

    try:
        jobs.update(dict.fromkeys(series, ""))
        for _ in range(5):
            wait_for(lambda: _listening(port), 60, "the node to listen")
            resend_failed()
            time.sleep(rng.uniform(0.5, 6.0))
            journal = Journal(storage / "journal.sqlite", read_only=True)
            kills.append(journal.counts())
            journal.close()
            node.send_signal(signal.SIGKILL)
            node.wait()
            node = _serve(config, log)
        wait_for(lambda: _listening(port), 60, "the node to listen")
        wait_for(resend_failed, 240, "every transfer to succeed", interval=1.0)
        wait_for(lambda: _queue_depth(storage) == 0 and set(series) <= set(orthanc.seg_references()), 240,
                 "a SEG for every series")
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(60)
        log.close()
    references = orthanc.seg_references()
    assert {uid: len(references[uid]) for uid in series} == dict.fromkeys(series, 1), kills
    # the PACS holds other SEGs too (here the 12-frame one, in CI also those of the tests before on this worker:
    # the lateral studies' 20- and 48-frame SEGs once failed a check that read every SEG in Orthanc): only ours count
    assert foreign in references
    frames = {uid: orthanc.get("/instances/{}/simplified-tags".format(
        orthanc.request("POST", "/tools/lookup", raw=sop.encode())[0]["ID"]))["NumberOfFrames"]
        for uid, sops in references.items() if uid in series for sop in sops}
    # 12 slices x 3 segments: a series the kills cut short was segmented again once complete, under the same UID
    assert set(frames) == set(series)
    wrong = {uid: count for uid, count in frames.items() if count != "36"}
    assert wrong == {}, (wrong, _log_lines(tmp_path / "node.log", wrong))
    # the statistics JSON kept beside (results/) is the final prediction's too: all 12 slices
    slices = {uid: json.loads(Storage(storage).stats_path(uid).read_text())["shape"][0] for uid in series}
    assert slices == dict.fromkeys(series, 12)
    journal = Journal(storage / "journal.sqlite", read_only=True)
    units = journal.units()
    assert sorted(u.key for u in units) == sorted(series)
    assert {u.state for u in units} == {"done"}, [(u.state, u.reason) for u in units if u.state != "done"]
    assert all(len(journal.instance_uids(u.key)) == 12 for u in units)
    journal.close()
    leftovers = [p for p in storage.rglob("*") if p.is_file() and (p.name.startswith(".") or "outbox" in p.parts)]
    assert leftovers == []
    assert len(kills) == 5


def _foreign_seg(folder, orthanc) -> str:
    """Put a SEG of another series (12 frames: one segment) into Orthanc, as a PACS holds; the series it references."""
    uid, _ = write_series(folder / "series", 99)
    study = read_series_folder(folder / "series")
    label = (study.images[0] > np.median(study.images[0])).astype(np.uint8)
    orthanc.upload(write_dicom_seg(label, study.reference, {"other": [1]}, folder / "seg.dcm"))
    return uid


def _log_lines(path, keys) -> list[str]:
    """The node's log lines naming any of keys (the failure message's evidence: what was predicted and sent when)."""
    return [line for line in path.read_text(errors="replace").splitlines() if any(key in line for key in keys)]


def _queue_depth(storage) -> int:
    """Units not yet done or failed."""
    journal = Journal(storage / "journal.sqlite", read_only=True)
    counts = journal.counts()
    journal.close()
    return sum(counts[state] for state in ("receiving", "queued", "predicting", "sending"))
