"""Time and peak memory of a command's whole process tree: the one measurement the benchmark scripts share.

Memory is sampled every 50 ms from /proc/<pid>/smaps_rollup over the command and all its
descendants (worker processes included), the same function for every tool:

- peak PSS (the headline): the largest sum of Pss. A page shared by n processes counts 1/n in
  each, so torch's libraries and the pages a forked worker shares with its parent count once for
  the tree, not once per process as in a sum of RSS;
- peak anonymous PSS: the same sum of Pss_Anon (heap, tensors, arrays): the part that does not
  depend on other processes on the machine (file-backed pages are also split with processes
  outside the tree that map the same files);
- peak RSS: the largest sum of VmRSS, which counts every shared page once per process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

MEMORY_FIELDS = ("rss", "pss", "pss_anon")
SMAPS_KEYS = {"Rss:": "rss", "Pss:": "pss", "Pss_Anon:": "pss_anon"}
SAMPLE_SECONDS = 0.05


def _process_memory(pid: int) -> dict[str, int]:
    """Rss, Pss and Pss_Anon (bytes) of one process from /proc/<pid>/smaps_rollup (zeros once it has exited)."""
    values = dict.fromkeys(MEMORY_FIELDS, 0)
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                key = SMAPS_KEYS.get(line.split(maxsplit=1)[0]) if line.strip() else None
                if key:
                    values[key] = int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return values


def _tree_pids(root_pid: int) -> list[int]:
    """A process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError):
            continue
    pids, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    return pids


def tree_memory(root_pid: int) -> dict[str, int]:
    """Sums of Rss, Pss and Pss_Anon (bytes) over a process tree: the one measurement used for every tool."""
    totals = dict.fromkeys(MEMORY_FIELDS, 0)
    for pid in _tree_pids(root_pid):
        for key, value in _process_memory(pid).items():
            totals[key] += value
    return totals


def measured(command: list[str], env: dict | None, label: str, cwd: Path) -> tuple[float, dict[str, int]]:
    """Run a command in cwd, sampling its process tree; (wall seconds, peak of each summed field). Exits on failure."""
    print(f"$ {' '.join(command)}", flush=True)
    start = time.perf_counter()
    # cwd outside the repository: `python -m segkit` must import the checkout PYTHONPATH names
    # stdout to a file, not a pipe: a full pipe would stall the tool while we sample
    log = cwd / f"{''.join(c if c.isalnum() or c in '-_.' else '_' for c in label)}.log"
    with open(log, "w") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        peaks = dict.fromkeys(MEMORY_FIELDS, 0)
        while process.poll() is None:
            for key, value in tree_memory(process.pid).items():
                peaks[key] = max(peaks[key], value)
            time.sleep(SAMPLE_SECONDS)
    seconds = time.perf_counter() - start
    if process.returncode != 0:
        print(log.read_text()[-4000:], file=sys.stderr)
        raise SystemExit(f"{label} failed with exit code {process.returncode}")
    print(f"  {label}: {seconds:.1f} s, {format_peaks(peaks)}", flush=True)
    return seconds, peaks


def format_peaks(peaks: dict[str, int]) -> str:
    """'peak PSS 1.23 GiB (anonymous 1.00 GiB), RSS 2.34 GiB'."""
    gib = 2 ** 30
    return (f"peak PSS {peaks['pss'] / gib:.2f} GiB (anonymous {peaks['pss_anon'] / gib:.2f} GiB), "
            f"peak RSS {peaks['rss'] / gib:.2f} GiB")
