"""The per-case pipeline: order kept, read-ahead / write-behind threads, failures isolated or stopping the run."""

from __future__ import annotations

import threading

from segkit.batch.pipeline import run_pipelined
from segkit.errors import UserError


def _steps(seen: dict, fail_load=(), fail_compute=(), fail_write=()):
    """load / compute / write recording their threads, raising for the given items."""
    def load(item):
        seen.setdefault("load", set()).add(threading.get_ident())
        if item in fail_load:
            raise UserError("unreadable", f"case{item}")
        return item * 10

    def compute(item, loaded):
        seen.setdefault("compute", set()).add(threading.get_ident())
        if item in fail_compute:
            raise RuntimeError("network exploded")
        return loaded + 1

    def write(item, computed):
        seen.setdefault("write", set()).add(threading.get_ident())
        if item in fail_write:
            raise OSError("disk full")
        return (item, computed)

    return load, compute, write


def test_order_threads_and_streaming_from_a_generator():
    seen: dict = {}
    results = list(run_pipelined((n for n in [3, 1, 2, 5]), *_steps(seen)))
    assert [item for item, _ in results] == [3, 1, 2, 5]
    assert [outcome.value for _, outcome in results] == [(3, 31), (1, 11), (2, 21), (5, 51)]
    assert all(outcome.seconds >= 0 and not outcome.failed for _, outcome in results)
    main = threading.get_ident()
    assert seen["compute"] == {main} and main not in seen["load"] | seen["write"]
    assert list(run_pipelined([], *_steps({}))) == []


def test_a_failing_step_fails_only_its_item():
    results = dict(run_pipelined([1, 2, 3, 4, 5], *_steps({}, fail_load=(2,), fail_compute=(3,), fail_write=(4,))))
    assert [n for n, outcome in results.items() if outcome.failed] == [2, 3, 4]
    assert results[1].value == (1, 11) and results[5].value == (5, 51)
    assert isinstance(results[2].error, UserError) and results[2].traceback is None
    assert "network exploded" in results[3].traceback[-1] and isinstance(results[4].error, OSError)


def test_stop_on_error_starts_nothing_after_the_first_failure():
    loaded = []
    load, compute, write = _steps({}, fail_load=(2,))

    def recording_load(item):
        loaded.append(item)
        return load(item)

    results = list(run_pipelined([1, 2, 3, 4, 5], recording_load, compute, write, stop_on_error=True))
    assert [item for item, _ in results] == [1, 2] and results[1][1].failed
    assert max(loaded) <= 3   # at most the one case read ahead before the failure was seen
