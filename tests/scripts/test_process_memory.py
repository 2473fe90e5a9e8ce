"""scripts/process_memory.py: the process-tree memory the benchmark scripts report counts a page shared by a forked worker once."""

from __future__ import annotations

import subprocess
import sys
import time

from script_loading import SCRIPTS, load_script

MIB = 2 ** 20
# a parent that fills 96 MiB, then forks a worker that keeps those pages shared (copy-on-write) and sleeps
FORKING = """
import os, sys, time
buffer = bytearray(96 * 1024 * 1024)
for i in range(0, len(buffer), 4096):
    buffer[i] = 1
parent = os.getpid()
if os.fork() == 0:   # the worker ends with its parent (the test kills the parent)
    deadline = time.time() + 30
    while os.getppid() == parent and time.time() < deadline:
        time.sleep(0.05)
    os._exit(0)
print("ready", flush=True)
time.sleep(30)
"""


def _script():
    """The shared measurement module (scripts/ is not a package)."""
    sys.path.insert(0, str(SCRIPTS))
    return load_script("process_memory")


def test_pss_counts_a_forked_workers_shared_pages_once_rss_twice() -> None:
    """Parent + forked child sharing 96 MiB: RSS sums to ~192 MiB of it, PSS and anonymous PSS to ~96 MiB."""
    bench = _script()
    process = subprocess.Popen([sys.executable, "-c", FORKING], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.2)
        memory = bench.tree_memory(process.pid)
        assert len(bench._tree_pids(process.pid)) == 2
    finally:
        process.kill()
        process.wait()
    assert memory["rss"] >= 2 * 96 * MIB                 # the shared buffer once per process
    assert 96 * MIB <= memory["pss_anon"] < 1.4 * 96 * MIB  # once for the tree (plus the interpreters' own heaps)
    assert memory["pss_anon"] <= memory["pss"] < memory["rss"] - 80 * MIB
    assert bench.tree_memory(process.pid) == {"rss": 0, "pss": 0, "pss_anon": 0}   # gone: nothing counted
