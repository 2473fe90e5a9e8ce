"""`segkit serve` logging: JSON lines for log collectors, series named by UID."""

from __future__ import annotations

import json
import logging

from segkit.cli.serve import setup_logging


def test_json_log_lines_carry_the_component_and_the_message(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO", "json", "serve")
        logging.getLogger("segkit.pacs").info("predicted %s in %.1f s", "1.2.3", 2.0)
        logging.getLogger("pynetdicom.assoc").info("chatter")        # quieted: WARNING and above only
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        from segkit import logs

        logs.configure()
    assert len(lines) == 1
    assert lines[0]["component"] == "serve" and lines[0]["level"] == "info"
    assert lines[0]["message"] == "predicted 1.2.3 in 2.0 s"
