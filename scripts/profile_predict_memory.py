"""Where `segkit predict`'s memory goes: its RSS over time, with the segkit function each thread is in.

Runs the CLI in this process (same arguments as `segkit predict`) and samples /proc/self/status
every 5 ms. Each time the RSS has moved by --step MiB since the last line it prints the time,
the RSS and the innermost segkit frames of every thread, then the peak. This is how the
large-CT regression of #25 was found (docs/benchmarks/predict-memory.md): the peak sat in the
QC picture's `centre_slices`, not in the revert. One process only: for the tool-vs-tool figures
(PSS over a process tree) use scripts/bench_predict_memory.py.

    PYTHONPATH=$PWD python scripts/profile_predict_memory.py -i IN -o OUT -m MODEL --device cpu --no-tta
"""

from __future__ import annotations

import sys
import threading
import time
from types import FrameType

STEP_MIB = 100


def rss_bytes() -> int:
    """This process's VmRSS in bytes."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def segkit_frames(frame: FrameType | None, depth: int = 4) -> str:
    """'module.py:line:function < ...' for the innermost `depth` segkit frames of a stack."""
    found: list[str] = []
    while frame is not None and len(found) < depth:
        name = frame.f_code.co_filename
        if "/segkit/" in name:
            found.append(f"{name.split('/segkit/')[-1]}:{frame.f_lineno}:{frame.f_code.co_name}")
        frame = frame.f_back
    return " < ".join(found)


def sample(stop: threading.Event, step: int, start: float, peak: list[int]) -> None:
    """Print a line whenever the RSS moved by `step` bytes; keep the peak in peak[0]."""
    me, last = threading.get_ident(), 0
    while not stop.is_set():
        rss = rss_bytes()
        peak[0] = max(peak[0], rss)
        if abs(rss - last) >= step:
            where = [segkit_frames(f) for tid, f in sys._current_frames().items() if tid != me]
            print(f"{time.perf_counter() - start:8.1f} s {rss / 2 ** 30:6.2f} GiB | "
                  + " || ".join(w for w in where if w), file=sys.stderr, flush=True)
            last = rss
        time.sleep(0.005)


def main() -> int:
    """Run `segkit predict` with this script's arguments while sampling; print the peak RSS."""
    from segkit.cli import main as segkit_main

    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=sample, args=(stop, STEP_MIB * 2 ** 20, time.perf_counter(), peak), daemon=True)
    sampler.start()
    try:
        code = segkit_main(["predict", *sys.argv[1:]])
    finally:
        stop.set()
        sampler.join()
        print(f"peak RSS {peak[0] / 2 ** 30:.2f} GiB", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
