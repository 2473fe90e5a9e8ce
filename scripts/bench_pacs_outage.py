"""The DICOM node with its destination down (#28 "Destination down"): are results delivered after it
returns, exactly once each, and none lost?

Runs `segkit serve` as a child process (what systemd runs) with the shipped retry settings (the
`[retry]` defaults unless `--backoff` is given), a pynetdicom storage SCP in this script as the
destination (it counts every C-STORE it answers, so a duplicate delivery would be counted twice,
which a PACS that keeps one instance per SOP Instance UID would hide), and:

1. sends `--before` series with the destination up (normal delivery);
2. stops the destination, sends `--during` series, keeps it down for `--down` seconds in all;
3. starts it again on the same port and waits until every series is `done` (or `--wait` runs out).

It prints (and writes with `--out`) the SEGs received per series, the journal's counts per state,
what is left in the outbox, and per series the send timeline: each failed try and the delivery,
in seconds from the moment the destination went down.

    python scripts/bench_pacs_outage.py --down 60 --out docs/benchmarks/pacs_outage_60s.json
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_pacs import Destination, free_port, make_model, send_series

from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.jsonio import write_json
from segkit.pacs.config import RetryConfig
from segkit.pacs.journal import Journal
from segkit.phantom import PhantomSpec, make_case


def journal_snapshot(storage: Path) -> tuple[dict[str, int], list, list[dict]]:
    """(counts per state, units, retry/failure events oldest first) read from the node's journal without locking it."""
    journal = Journal(storage / "journal.sqlite", read_only=True)
    try:
        return journal.counts(), journal.units(), list(reversed(journal.last_errors(limit=100000)))
    finally:
        journal.close()


def wait_until(condition, timeout: float, node: subprocess.Popen, log: Path) -> bool:
    """Poll condition() every 0.2 s; False after timeout; RuntimeError when the node died."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"the node died; see {log}")
        if condition():
            return True
        time.sleep(0.2)
    return False


def write_config(work: Path, model: Path, node_port: int, dest_port: int, backoff: float | None) -> Path:
    """The node's TOML: one peer, the destination, the shipped [retry] unless a back-off is given."""
    retry = "" if backoff is None else f"\n[retry]\nbackoff_seconds = {backoff}\n"
    config = work / "node.toml"
    config.write_text(f'[node]\nae_title = "SEGKIT"\nhost = "127.0.0.1"\nport = {node_port}\nstorage = "storage"\n'
                      f'quiet_seconds = 1\nmin_free_mb = 100\n\n[model]\npath = "{model}"\ndevice = "cpu"\n'
                      f'tta = false\nthreads = 1\n\n[[peers]]\nae_title = "BENCHSRC"\n\n'
                      f'[destination]\nae_title = "BENCHDEST"\nhost = "127.0.0.1"\nport = {dest_port}\n{retry}')
    return config


def main() -> int:
    """Run the outage and print (and optionally write) the JSON result; exit 1 when a SEG was lost or duplicated."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=int, default=2, help="series delivered before the outage")
    parser.add_argument("--during", type=int, default=6, help="series sent while the destination is down")
    parser.add_argument("--down", type=float, default=60.0, help="seconds the destination is down")
    parser.add_argument("--backoff", type=float, help="[retry] backoff_seconds (default: the shipped one)")
    parser.add_argument("--wait", type=float, default=900.0, help="seconds to wait for delivery after the return")
    parser.add_argument("--shape", type=int, nargs=3, default=[16, 64, 64], help="slices rows columns")
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pacs_outage_"))
    model = make_model(work / "model", [4, 8], [16, 64, 64])
    node_port, dest_port = free_port(), free_port()
    config = write_config(work, model, node_port, dest_port, args.backoff)
    retry = RetryConfig() if args.backoff is None else RetryConfig(backoff_seconds=args.backoff)
    destination = Destination(dest_port)
    log_path = work / "node.log"
    log = open(log_path, "wb")
    node = subprocess.Popen([sys.executable, "-m", "segkit", "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, cwd=work, env={**os.environ, "OMP_NUM_THREADS": "1"})
    storage = work / "storage"
    images, _, geometry = make_case(0, PhantomSpec(shape=tuple(args.shape), spacing=(3.0, 1.0, 1.0)))
    received: collections.Counter[str] = collections.Counter()
    series: list[str] = []

    def send_one(index: int) -> None:
        uid = new_uid()
        files = write_dicom_series(np.round(images[0]), geometry, work / "series" / str(index), "T1 axial",
                                   series_uid=uid, study_uid=new_uid())
        send_series(node_port, files)
        series.append(uid)

    def done(count: int) -> bool:
        return journal_snapshot(storage)[0]["done"] >= count

    try:
        if not wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", node_port)) == 0, 120, node, log_path):
            raise RuntimeError(f"the node did not start; see {log_path}")
        for index in range(args.before):
            send_one(index)
        wait_until(lambda: done(args.before), 300, node, log_path)
        received.update(destination.received)
        destination.server.shutdown()
        down_at = time.time()
        for index in range(args.before, args.before + args.during):
            send_one(index)
        sent_during_s = time.time() - down_at
        predicted = wait_until(lambda: journal_snapshot(storage)[0]["sending"] == args.during,
                               max(1.0, args.down - (time.time() - down_at)), node, log_path)
        time.sleep(max(0.0, args.down - (time.time() - down_at)))
        outbox_while_down = sorted(p.name for p in (storage / "outbox").glob("*"))
        counts_while_down = journal_snapshot(storage)[0]
        destination = Destination(dest_port)
        up_at = time.time()
        delivered = wait_until(lambda: done(args.before + args.during), args.wait, node, log_path)
        time.sleep(2.0)                      # a duplicate re-send would arrive in this moment
        received.update(destination.received)
        counts, units, events = journal_snapshot(storage)
        outbox_after = sorted(p.name for p in (storage / "outbox").glob("*"))
    finally:
        node.terminate()
        node.wait(60)
        destination.server.shutdown()
        log.close()
    by_key = {unit.key: unit for unit in units}
    seg_of = {unit.key: unit.seg_uid for unit in units}
    timeline = {}
    for key in series[args.before:]:
        unit = by_key[key]
        timeline[key] = {
            "predicted_s": round(unit.predict_started_at + (unit.predict_seconds or 0) - down_at, 1),
            "failed_sends_s": [round(e["at"] - down_at, 1) for e in events if e["key"] == key],
            "delivered_s": round(unit.updated_at - down_at, 1) if unit.state == "done" else None,
            "send_attempts_journal": unit.send_attempts, "state": unit.state}
    per_series = {key: received.get(seg_of.get(key) or "", 0) for key in series}
    result = {
        "down_seconds": round(up_at - down_at, 1), "series_before": args.before, "series_during": args.during,
        "series_sent_during_outage_in_s": round(sent_during_s, 1),
        "all_predicted_while_down": predicted,
        "retry": {"max_attempts": retry.max_attempts, "backoff_seconds": retry.backoff_seconds,
                  "backoff_max_seconds": retry.backoff_max_seconds},
        "journal_while_down": counts_while_down, "outbox_files_while_down": len(outbox_while_down),
        "delivered_all": delivered, "journal_end": counts, "outbox_files_end": len(outbox_after),
        # SEGs the destination received per series -> how many series got that many
        "series_by_segs_received": {str(n): c for n, c in sorted(collections.Counter(per_series.values()).items())},
        "segs_received_total": sum(received.values()), "foreign_segs": sorted(set(received) - set(seg_of.values())),
        "lost": [k for k, n in per_series.items() if n == 0], "duplicated": [k for k, n in per_series.items() if n > 1],
        "delivered_after_return_s": sorted(round(by_key[k].updated_at - up_at, 1) for k in series[args.before:]
                                           if by_key[k].state == "done"),
        "timeline_from_down_s": timeline, "shape": args.shape,
        "machine": f"{platform.machine()} {os.cpu_count()} cores", "load_average_1_5_15": os.getloadavg(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0 if delivered and not result["lost"] and not result["duplicated"] else 1


if __name__ == "__main__":
    sys.exit(main())
