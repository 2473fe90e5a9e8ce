"""Progress output: bars only on a terminal, lines printed whole, the process start clock."""

from __future__ import annotations

import io
import sys
import time

from segkit.console import on_terminal, process_started_at, progress_bar, say


def test_bars_are_off_off_a_terminal_unless_asked_for(monkeypatch) -> None:
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not on_terminal()
    assert progress_bar(range(3)).disable and not progress_bar(range(3), show=True, file=io.StringIO()).disable
    assert list(progress_bar(range(3))) == [0, 1, 2]


def test_say_prints_one_whole_line(capsys) -> None:
    say("epoch 1/10: loss 0.5")
    assert capsys.readouterr().out == "epoch 1/10: loss 0.5\n"


def test_the_clock_starts_with_the_process_not_with_the_call() -> None:
    """pytest's start-up and imports ran before this test: the process began well before now (Linux /proc)."""
    started = process_started_at()
    assert time.monotonic() - 3600.0 <= started < time.monotonic() - 0.5
