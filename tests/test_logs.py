"""segkit.logs: text lines as before, JSON lines for collectors, and the logging.Formatter."""

from __future__ import annotations

import io
import json
import logging

import pytest

from segkit import logs


@pytest.fixture(autouse=True)
def text_again():
    """Every test leaves the process in text mode."""
    yield
    logs.configure()


def test_text_mode_keeps_the_usual_lines_and_skips_collector_events():
    stream = io.StringIO()
    logs.configure("text", stream=stream)
    logs.warning("c01: oblique")
    logs.info("done")
    logs.info("case c01 ok", event="case_finished", text=False)
    assert stream.getvalue() == "warning: c01: oblique\ndone\n"


def test_json_mode_writes_one_parseable_object_per_line():
    stream = io.StringIO()
    logs.configure("json", component="predict", stream=stream)
    logs.warning("c01: oblique", event="case_warning", case_id="c01")
    logs.info("case c01 ok", event="case_finished", text=False, seconds=1.5, path=io)   # not JSON-able: str
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["case_warning", "case_finished"]
    assert lines[0]["level"] == "warning" and lines[0]["component"] == "predict" and lines[0]["case_id"] == "c01"
    assert lines[0]["time"].endswith("Z") and "T" in lines[0]["time"]
    assert lines[1]["seconds"] == 1.5 and isinstance(lines[1]["path"], str)
    with pytest.raises(ValueError):
        logs.configure("xml")
    with pytest.raises(ValueError):
        logs.emit("fatal", "x")


def test_json_formatter_for_standard_logging():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter("serve"))
    logger = logging.getLogger("segkit.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("study %s sent twice?", "1.2.3", extra={"event": "duplicate", "fields": {"study": "1.2.3"}})
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line == {**line, "level": "warning", "component": "serve", "event": "duplicate",
                    "message": "study 1.2.3 sent twice?", "study": "1.2.3"}
