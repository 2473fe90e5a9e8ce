"""Durable writes and the storage layout: complete files or none, partial files cleaned on start."""

from __future__ import annotations

import threading

from segkit.pacs.store import TEMP_PREFIX, Storage, durable_write, valid_uid


def test_durable_write_replaces_atomically_and_concurrent_writers_do_not_collide(tmp_path):
    target = tmp_path / "a" / "1.2.3.dcm"
    payloads = [bytes([i]) * 100_000 for i in range(8)]
    threads = [threading.Thread(target=durable_write, args=(target, data)) for data in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert target.read_bytes() in payloads                        # one whole payload, never a mix
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_partial_files_of_an_interrupted_run_are_removed(tmp_path):
    storage = Storage(tmp_path)
    kept = storage.instance_path("1.2", "1.2.3", "1.2.3.4")
    durable_write(kept, b"DICM")
    (kept.parent / f"{TEMP_PREFIX}1.2.3.5.dcm.99.1").write_bytes(b"half")
    (storage.work / "1.2.3" / ".1.2.3_seg.dcm.abc.dcm").parent.mkdir(parents=True)
    (storage.work / "1.2.3" / ".1.2.3_seg.dcm.abc.dcm").write_bytes(b"half")
    assert storage.remove_partial_files() == 2
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [kept]


def test_uids_that_are_not_uids_cannot_become_paths():
    assert valid_uid("1.2.840.10008.5.1.4.1.1.4")
    assert not any(valid_uid(text) for text in ("", "../x", "1..2", "1.2/3", "1." * 40))
