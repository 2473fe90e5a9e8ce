"""What the DICOM node adds to prediction (#28 "Cost"): receive + queue + send time vs predict time per series,
and the node's RSS over many series.

Runs `segkit serve` as a child process (what systemd runs) with a pynetdicom storage SCP from this
script as the destination, sends real-shaped MR series (one-channel phantom volumes written as
DICOM in scanner order) by C-STORE one after the other, waits for each SEG to come back, and reads
the journal's per-series times:

- receive: the sender's wall time for the series' C-STOREs (the node writes + fsyncs each
  instance and journals it before answering);
- queue: from the end of the quiet period to the start of the prediction (the predict thread's
  polling and the journal);
- predict: the node's prediction of the series (the one pipeline: read, network, revert, SEG and
  statistics writing, UID restamp);
- send: the C-STORE of the SEG to the destination.

The quiet period itself is a configured wait (`quiet_seconds`), not work, and is reported apart.
RSS is the node process's VmRSS after the warm-up series and after the last one.

    python scripts/bench_pacs.py --series 100 --shape 24 192 192 --features 16 32 64 128
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.jsonio import write_json
from segkit.networks import build_network
from segkit.pacs.journal import Journal
from segkit.phantom import PhantomSpec, make_case


def free_port() -> int:
    """A free TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_model(folder: Path, features: list[int], patch: list[int]) -> Path:
    """An untrained one-channel plain U-Net model folder (prediction cost depends on the size, not the weights)."""
    stages = len(features)
    architecture = {"family": "unet", "spatial_dims": 3, "features_per_stage": features,
                    "kernel_sizes": [[1, 3, 3]] + [[3, 3, 3]] * (stages - 1),
                    "strides": [[1, 1, 1]] + [[1, 2, 2] if i < 2 else [2, 2, 2] for i in range(stages - 1)],
                    "blocks_per_stage": [2] * stages, "decoder_blocks_per_stage": [2] * (stages - 1),
                    "norm": "instance", "deep_supervision": True}
    labels = {"background": 0, "Left-Thing": 1, "Right-Thing": 2}
    plans = {"schema_version": 1, "dataset_name": "BenchPacs", "num_channels": 1, "canonical_orientation": "LPS",
             "channel_names": ["T1"], "labels": labels, "label_mode": "softmax",
             "outputs": {"Left-Thing": [1], "Right-Thing": [2]}, "regions_class_order": None, "num_outputs": 3,
             "normalization": [{"scheme": "zscore", "use_nonzero_mask": False}],
             "configurations": {"3d_fullres": {
                 "target_spacing": [3.0, 1.0, 1.0], "median_shape": [24, 192, 192], "batch_size": 2,
                 "resampling": {"image_order": 3, "label": "onehot_linear", "anisotropy_threshold": 3.0},
                 "previous_stage": None, "spatial_dims": 3, "patch_size": patch, "mirror_axes": [0, 1],
                 "architecture": architecture}}}
    model_dir = folder / "models" / "3d_fullres"
    write_json(model_dir / "plans.json", plans)
    write_json(model_dir / "dataset.json", {"name": "BenchPacs", "labels": labels, "file_ending": ".nii.gz",
                                            "channel_names": {"0": "T1"}})
    torch.manual_seed(0)
    network = build_network(architecture, 1, 3)
    (model_dir / "fold_0").mkdir(parents=True, exist_ok=True)
    torch.save({"format": "segkit-checkpoint-1", "network_state": network.state_dict(), "architecture": architecture,
                "in_channels": 1, "num_outputs": 3, "configuration": "3d_fullres", "plans_sha256": "0" * 64,
                "epoch": 1}, model_dir / "fold_0" / "checkpoint_final.pt")
    return model_dir


class Destination:
    """A pynetdicom storage SCP counting the SEGs it receives (and discarding them)."""

    def __init__(self, port: int):
        from pynetdicom import AE, StoragePresentationContexts, evt

        self.received: list[str] = []
        ae = AE(ae_title="BENCHDEST")
        ae.supported_contexts = StoragePresentationContexts
        self.server = ae.start_server(("127.0.0.1", port), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])

    def _store(self, event) -> int:
        self.received.append(str(event.dataset.SOPInstanceUID))
        return 0


def send_series(port: int, files: list[Path]) -> tuple[float, int]:
    """C-STORE a series to the node as BENCHSRC, re-sending after a lost association as a PACS does; (seconds, tries)."""
    import pydicom
    from pynetdicom import AE

    datasets = [pydicom.dcmread(path) for path in files]
    ae = AE(ae_title="BENCHSRC")
    ae.dimse_timeout = ae.network_timeout = ae.acse_timeout = 300
    ae.add_requested_context(datasets[0].SOPClassUID, datasets[0].file_meta.TransferSyntaxUID)
    start = time.perf_counter()
    for attempt in range(1, 6):
        assoc = ae.associate("127.0.0.1", port, ae_title="SEGKIT")
        codes = [getattr(assoc.send_c_store(dataset), "Status", None) for dataset in datasets] \
            if assoc.is_established else [None]
        if assoc.is_established:
            assoc.release()
        if all(code == 0 for code in codes):
            return time.perf_counter() - start, attempt
    raise RuntimeError(f"the node did not take the series after 5 tries (last statuses {codes})")


def rss_mb(pid: int) -> float:
    """VmRSS of a process in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    """Run the benchmark and print (and optionally write) the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--shape", type=int, nargs=3, default=[24, 192, 192], help="slices rows columns")
    parser.add_argument("--features", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--patch", type=int, nargs=3, default=[16, 128, 128])
    parser.add_argument("--quiet", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="series before the first RSS reading")
    parser.add_argument("--out", help="write the JSON here too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_pacs_"))
    model = make_model(work / "model", args.features, args.patch)
    node_port, dest_port = free_port(), free_port()
    destination = Destination(dest_port)
    config = work / "node.toml"
    config.write_text(f'[node]\nae_title = "SEGKIT"\nhost = "127.0.0.1"\nport = {node_port}\nstorage = "storage"\n'
                      f"quiet_seconds = {args.quiet}\nmin_free_mb = 100\n\n[model]\npath = \"{model}\"\n"
                      f'device = "cpu"\ntta = false\nthreads = {args.threads}\n\n[[peers]]\nae_title = "BENCHSRC"\n\n'
                      f'[destination]\nae_title = "BENCHDEST"\nhost = "127.0.0.1"\nport = {dest_port}\n')
    log = open(work / "node.log", "wb")
    node = subprocess.Popen([sys.executable, "-m", "segkit", "serve", "--config", str(config)], stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    spec = PhantomSpec(shape=tuple(args.shape), spacing=(3.0, 1.0, 1.0))
    rows = []
    rss_warm = None
    try:
        deadline = time.time() + 120
        while socket.socket().connect_ex(("127.0.0.1", node_port)) != 0:
            if time.time() > deadline or node.poll() is not None:
                raise RuntimeError(f"the node did not start; see {work / 'node.log'}")
            time.sleep(0.2)
        images, _, geometry = make_case(0, spec)
        for index in range(args.series):
            uid = new_uid()
            files = write_dicom_series(np.round(images[0]), geometry, work / "series" / str(index), "T1 axial",
                                       series_uid=uid, study_uid=new_uid())
            receive, tries = send_series(node_port, files)
            sent_at = time.time()
            while len(destination.received) < index + 1:
                if node.poll() is not None:
                    raise RuntimeError(f"the node died; see {work / 'node.log'}")
                time.sleep(0.05)
            unit = None
            while unit is None or unit.state != "done":   # the SEG can arrive a moment before the journal says so
                time.sleep(0.02)
                journal = Journal(work / "storage" / "journal.sqlite", read_only=True)
                unit = journal.unit(uid)
                journal.close()
            rows.append({"tries": tries, "receive": receive, "queue": unit.predict_started_at - unit.last_instance_at - args.quiet,
                         "predict": unit.predict_seconds, "send": unit.send_seconds,
                         "end_to_end": time.time() - sent_at + receive})
            for path in files:
                path.unlink()
            if index + 1 == args.warmup:
                rss_warm = rss_mb(node.pid)
        rss_end = rss_mb(node.pid)
    finally:
        node.terminate()
        node.wait(60)
        destination.server.shutdown()
        log.close()
    measured = rows[args.warmup:] or rows

    def median(key: str) -> float:
        return statistics.median(r[key] for r in measured)

    overhead = median("receive") + median("queue") + median("send")
    result = {"series": args.series, "shape": args.shape, "features": args.features, "patch": args.patch,
              "threads": args.threads, "quiet_seconds": args.quiet, "instances_per_series": args.shape[0],
              "median_seconds": {k: round(median(k), 4) for k in ("receive", "queue", "predict", "send", "end_to_end")},
              "overhead_fraction_of_predict": round(overhead / median("predict"), 4),
              "series_resent": sum(r["tries"] > 1 for r in rows),
              "rss_mb_after_warmup": round(rss_warm or 0, 1), "rss_mb_end": round(rss_end, 1),
              "rss_growth_mb": round(rss_end - (rss_warm or rss_end), 1),
              "machine": f"{platform.machine()} {os.cpu_count()} cores", "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(json.dumps(result, indent=2))
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
