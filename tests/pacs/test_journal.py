"""The node's journal: states, retries, recovery after a kill, re-sent and late instances."""

from __future__ import annotations

import time

from segkit.pacs.journal import Journal


def _received(journal: Journal, key: str = "1.2.3", sops=("1.1", "1.2")) -> None:
    for sop in sops:
        journal.instance_arrived(key, "9.9", f"incoming/9.9/{key}", sop)


def _done(journal: Journal):
    """A unit received, predicted and sent (state done); the unit as predicted."""
    _received(journal)
    journal.queue_quiet(0.0)
    unit = journal.claim("queued", "predicting")
    assert unit is not None and journal.predicted(unit.key, unit.generation, "2.25.1", 1.0)
    assert journal.sent(unit.key, 0.1)
    return unit


def test_a_unit_goes_from_receiving_to_done_after_quiet(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    assert journal.queue_quiet(60.0) == []                  # not quiet yet
    assert journal.queue_quiet(0.0) == ["1.2.3"]
    unit = journal.claim("queued", "predicting")
    assert unit is not None and unit.instances == 2 and journal.claim("queued", "predicting") is None
    assert journal.predicted(unit.key, unit.generation, "2.25.1", 1.5)
    journal.sent(unit.key, 0.1)
    assert journal.unit("1.2.3").state == "done" and journal.counts()["done"] == 1
    assert journal.instance_uids("1.2.3") == ["1.1", "1.2"]


def test_state_survives_reopening_and_recovery_requeues_interrupted_predictions(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal, "a")
    _received(journal, "b")
    journal.queue_quiet(0.0)
    journal.claim("queued", "predicting")
    second = journal.claim("queued", "predicting")
    journal.predicted(second.key, second.generation, "2.25.2", 1.0)
    journal.close()                                         # as if killed: nothing else is written
    reopened = Journal(tmp_path / "j.sqlite")
    assert reopened.recover() == {"predicting": 1, "sending": 1}
    assert {u.key: u.state for u in reopened.units()} == {"a": "queued", "b": "sending"}


def test_resent_instances_change_nothing_and_new_ones_reopen_a_done_unit(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _done(journal)
    assert journal.instance_arrived("1.2.3", "9.9", "f", "1.1") is False
    assert journal.unit("1.2.3").state == "done"
    assert journal.instance_arrived("1.2.3", "9.9", "f", "1.9") is True
    assert journal.unit("1.2.3").state == "receiving" and journal.unit("1.2.3").instances == 3


def test_a_failed_unit_reopens_only_when_the_sender_restores_its_files(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    journal.queue_quiet(0.0)
    journal.claim("queued", "predicting")
    journal.attempt_failed("1.2.3", "predicting", "files gone", 1, 0, permanent=True)
    journal.instance_arrived("1.2.3", "9.9", "f", "1.1")                  # file was still there: stays failed
    assert journal.unit("1.2.3").state == "failed"
    journal.instance_arrived("1.2.3", "9.9", "f", "1.1", restored=True)
    assert journal.unit("1.2.3").state == "receiving" and journal.unit("1.2.3").reason is None


def test_an_instance_arriving_during_prediction_discards_that_prediction(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    journal.queue_quiet(0.0)
    unit = journal.claim("queued", "predicting")
    journal.instance_arrived("1.2.3", "9.9", "f", "1.3")
    assert journal.predicted(unit.key, unit.generation, "2.25.1", 1.0) is False
    assert journal.unit("1.2.3").state == "receiving"


def test_failures_retry_with_back_off_then_fail_with_the_reason(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    journal.queue_quiet(0.0)
    journal.claim("queued", "predicting")
    assert journal.attempt_failed("1.2.3", "predicting", "boom", max_attempts=2, delay=30.0) == "queued"
    assert journal.claim("queued", "predicting") is None           # backing off
    assert journal.unit("1.2.3").next_attempt_at > time.time() + 20
    assert journal.attempt_failed("1.2.3", "predicting", "boom again", max_attempts=2, delay=0) == "failed"
    unit = journal.unit("1.2.3")
    assert unit.state == "failed" and unit.reason == "boom again" and unit.attempts == 2
    assert [e["kind"] for e in journal.last_errors()] == ["failed", "retry"]


def test_an_input_problem_fails_at_once(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    journal.queue_quiet(0.0)
    journal.claim("queued", "predicting")
    assert journal.attempt_failed("1.2.3", "predicting", "bad", 5, 0, permanent=True) == "failed"


def test_a_read_only_view_sees_the_running_node_and_cannot_write(tmp_path):
    import sqlite3

    import pytest

    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)
    view = Journal(tmp_path / "j.sqlite", read_only=True)
    assert view.counts()["receiving"] == 1
    journal.queue_quiet(0.0)
    assert view.counts()["queued"] == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        view.instance_arrived("4.5.6", "9.9", "f", "1.1")
    view.close()
    journal.close()


def test_a_known_instance_with_other_content_reopens_a_done_unit_once(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    unit = _done(journal)
    assert journal.instance_arrived("1.2.3", "9.9", "f", "1.1", changed=True) is True
    reopened = journal.unit("1.2.3")
    assert reopened.state == "receiving" and reopened.instances == 2 and reopened.generation == unit.generation + 1
    assert journal.last_errors()[0]["kind"] == "reopened"


def test_retry_failed_puts_units_back_to_sending_or_queued_and_refuses_unknown_keys(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    for key in ("a", "b"):
        _received(journal, key)
    journal.queue_quiet(0.0)
    predicted = journal.claim("queued", "predicting")
    journal.predicted(predicted.key, predicted.generation, "2.25.1", 1.0)
    journal.attempt_failed(predicted.key, "sending", "refused", 1, 0)
    other = journal.claim("queued", "predicting")
    journal.attempt_failed(other.key, "predicting", "model error", 1, 0)
    assert journal.counts()["failed"] == 2
    assert journal.retry_failed(["a", "zzz"], lambda key: True)["unknown"] == ["zzz"]
    assert journal.counts()["failed"] == 2                          # nothing moved
    moved = journal.retry_failed([], lambda key: True)
    assert moved == {"sending": [predicted.key], "queued": [other.key], "unknown": []}
    assert journal.unit(predicted.key).send_attempts == 0 and journal.unit(other.key).reason is None


def test_a_seg_sent_after_its_series_grew_neither_finishes_nor_fails_the_grown_series(tmp_path):
    journal = Journal(tmp_path / "j.sqlite")
    _received(journal)                                      # a transfer cut short by a crash: 2 of its instances
    journal.queue_quiet(0.0)
    unit = journal.claim("queued", "predicting")
    journal.predicted(unit.key, unit.generation, "2.25.1", 1.0)
    stale = journal.claim("sending", "sending")             # the send thread starts sending the partial SEG
    assert stale is not None
    _received(journal, sops=("1.3",))                       # ... while the sender completes the series
    assert journal.unit("1.2.3").state == "receiving"
    # the partial SEG's send failing must not put the unit back to sending its old SEG
    assert journal.attempt_failed(stale.key, "sending", "refused", 5, 0, generation=stale.generation) == "receiving"
    journal.queue_quiet(0.0)
    grown = journal.claim("queued", "predicting")
    assert grown is not None and grown.instances == 3
    journal.predicted(grown.key, grown.generation, "2.25.1", 1.0)
    # the partial SEG's send finishing late must not mark the grown series done before its own SEG went out
    assert journal.sent(stale.key, 0.1, stale.generation) is False
    assert journal.unit("1.2.3").state == "sending"
    assert journal.sent(grown.key, 0.1, grown.generation) is True
    assert journal.unit("1.2.3").state == "done"
