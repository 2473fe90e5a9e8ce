"""Capture what native decoders (GDCM, libjpeg, ITK) print straight to file descriptor 2.

SimpleITK's warning switch covers ITK's own warnings only; GDCM's JPEG codecs write through C
stdio, so a 12-bit lossy JPEG series printed hundreds of lines such as "Unsupported JPEG data
precision 12" into a batch log. `captured_native_stderr` points fd 2 at a temporary file while a
read runs, and hands back the lines; lines that are segkit's own (another thread's
"warning: ..." while the capture was on) are written back to stderr, the decoder's are not.

fd 2 is one per process, so captures are serialised by a lock (a nested capture in the same
thread passes through), and Python's sys.stderr is flushed on both sides.
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCK = threading.RLock()
_DEPTH = threading.local()
# what segkit itself prints (BatchReport.warn, CLI messages): never swallowed
_OWN_PREFIXES = ("warning:", "error:", "segkit")


@contextmanager
def captured_native_stderr() -> Iterator[list[str]]:
    """Yield a list that, after the block, holds the lines native code wrote to fd 2 during it."""
    lines: list[str] = []
    with _LOCK:
        if getattr(_DEPTH, "value", 0):       # an outer capture in this thread already holds fd 2
            yield lines
            return
        _DEPTH.value = 1
        try:
            with tempfile.TemporaryFile() as sink:
                _flush()
                saved = os.dup(2)
                try:
                    os.dup2(sink.fileno(), 2)
                    yield lines
                finally:
                    _flush()
                    os.dup2(saved, 2)
                    os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", errors="replace")
        finally:
            _DEPTH.value = 0
    for line in text.splitlines():
        if line.strip().lower().startswith(_OWN_PREFIXES):
            print(line, file=sys.stderr)
        elif line.strip():
            lines.append(line.strip())


def _flush() -> None:
    """Flush Python's stderr so its buffered text lands on the right side of a redirect."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):     # no stderr, or a closed one
        pass


def summarise(lines: list[str], limit: int = 3) -> str:
    """'N lines, e.g. "a"; "b"' for a note about silenced decoder output."""
    distinct = list(dict.fromkeys(lines))
    shown = "; ".join(f'"{line[:100]}"' for line in distinct[:limit])
    return f"{len(lines)} line(s), e.g. {shown}"
