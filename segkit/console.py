"""Progress output: a tqdm bar only on a terminal, plain lines everywhere else.

A bar redraws its line with carriage returns; in a log file (`segkit train > log`, a batch
job, CI) those become garbage, so every bar in segkit is made here and is off unless stderr
is a terminal. Lines meant to stay (one per epoch, one per case) go through `say`, which
prints above a live bar instead of gluing onto it.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm


def on_terminal() -> bool:
    """True when stderr (where bars go) is an interactive terminal."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):   # a closed or replaced stream
        return False


def progress_bar(iterable: Iterable | None = None, *, show: bool | None = None, **options: Any) -> tqdm:
    """A tqdm bar, disabled unless `show` (default: stderr is a terminal)."""
    visible = on_terminal() if show is None else show
    return tqdm(iterable, disable=not visible, **options)


def say(message: str) -> None:
    """Print one line to stdout, above any live bar (never glued to an unfinished one)."""
    tqdm.write(message, file=sys.stdout)
    sys.stdout.flush()


def process_started_at() -> float:
    """time.monotonic() at which this process started (Linux /proc), else now.

    `segkit train --time-budget M` as a command is budgeted from here, interpreter start and
    imports included (a clock started inside `train` left 14 s under load outside the budget).
    Only the command-line entry point uses it: an in-process call (`segkit demo`, tests, the
    Python API) starts its clock when it is called.
    """
    try:
        with open("/proc/self/stat") as handle:
            start_ticks = float(handle.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as handle:
            uptime = float(handle.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic()
    return time.monotonic() - max(0.0, min(age, 3600.0))
