"""Native decoders' output on fd 2 is captured; segkit's own lines pass through; nested captures are safe."""

from __future__ import annotations

import os

from segkit.io.native_stderr import captured_native_stderr, summarise


def test_writes_to_fd_2_are_captured_and_segkits_own_lines_pass_through(capfd) -> None:
    with captured_native_stderr() as lines:
        os.write(2, b"Unsupported JPEG data precision 12\n\nwarning: case c01 is lossy\n")
        with captured_native_stderr() as inner:          # nested: the outer capture keeps fd 2
            os.write(2, b"Unsupported JPEG data precision 12\n")
    assert inner == []
    assert lines == ["Unsupported JPEG data precision 12"] * 2
    assert capfd.readouterr().err == "warning: case c01 is lossy\n"
    os.write(2, b"after\n")                                  # fd 2 is restored
    assert capfd.readouterr().err == "after\n"


def test_summary_counts_every_line_and_shows_distinct_ones() -> None:
    assert summarise(["a", "a", "b", "c", "d"], limit=2) == '5 line(s), e.g. "a"; "b"'
