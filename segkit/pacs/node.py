"""The DICOM node (`segkit serve`): receive, wait for quiet, predict, send; survive any crash.

Three activities run side by side, so receiving goes on while a unit is predicted and a
destination that is down delays only sending:

- the SCP threads (`receive.Receiver`) store instances and journal them;
- the predict thread moves quiet units to ``queued``, predicts one at a time and puts the SEG
  in the outbox (``sending``);
- the send thread C-STOREs (or STOW-RSes) outbox SEGs, retrying with back-off: a destination
  that cannot be reached is retried until it returns (the SEGs wait in the outbox); one that
  refuses a SEG ``max_attempts`` times leaves that unit ``failed`` with its reason, and the
  others go on.

On start the journal is recovered (`Journal.recover`) and temp files of interrupted writes are
deleted, so a kill -9 at any moment followed by a restart finishes every unit exactly once.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from segkit.pacs.config import NodeConfig
from segkit.pacs.journal import Journal, Unit
from segkit.pacs.predict import UnitFailed, UnitPredictor
from segkit.pacs.receive import Receiver, start_server
from segkit.pacs.send import SendError, store_file
from segkit.pacs.store import Storage, durable_copy

LOG = logging.getLogger("segkit.pacs")
IDLE_SECONDS = 0.2


def status_summary(journal: Journal, limit: int = 10) -> dict:
    """What `segkit serve --status` and the health endpoint report: counts, queue depth, last errors, timings."""
    counts = journal.counts()
    return {"counts": counts, "queue_depth": counts["receiving"] + counts["queued"] + counts["predicting"]
            + counts["sending"], "failed": [{"key": u.key, "reason": u.reason} for u in journal.units("failed")][-limit:],
            "last_errors": journal.last_errors(limit), "timings": journal.timings()}


class Node:
    """A running node: SCP, predict and send threads, optional health endpoint."""

    def __init__(self, config: NodeConfig, predictor: UnitPredictor | None = None, source: str = "push"):
        self.config = config
        self.storage = Storage(config.storage)
        removed = self.storage.remove_partial_files()
        self.journal = Journal(config.journal_path)
        recovered = self.journal.recover()
        if not config.keep_files:
            removed += self._drop_delivered_outbox()
        if removed or recovered["predicting"] or recovered["sending"]:
            LOG.info("recovered after a restart: %d partial file(s) removed, %d prediction(s) re-queued, "
                     "%d result(s) to send", removed, recovered["predicting"], recovered["sending"])
        if predictor is None:
            if config.model is None:
                from segkit.errors import UserError

                raise UserError("a [model] section is needed to serve", config.path)
            predictor = UnitPredictor(config.model, self.storage)
        self.predictor = predictor
        self.receiver = Receiver(config, self.storage, self.journal, predictor.unit_by_study, source)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server: Any = None
        self._health: ThreadingHTTPServer | None = None
        self.port = config.port
        self.health_port = config.health_port
        self._last_sweep = 0.0

    def start(self) -> None:
        """Start listening and working (returns at once)."""
        self._adopt_orphans()
        self._server = start_server(self.config, self.receiver)
        self.port = self._server.server_address[1]
        for name, target in (("segkit-predict", self._predict_loop), ("segkit-send", self._send_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.config.health_port:
            self._health = health_server(self.journal, self.config.health_port)
            self.health_port = self._health.server_address[1]
        LOG.info("listening as %s on %s:%d%s", self.config.ae_title, self.config.host, self.port,
                 " (TLS)" if self.config.tls else "")

    def stop(self) -> None:
        """Stop accepting, let the threads finish their current step, close the journal."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        if self._health is not None:
            self._health.shutdown()
        for thread in self._threads:
            thread.join(timeout=120)
        self.journal.close()

    def wait(self) -> None:
        """Block until stop() is called (from a signal handler)."""
        while not self._stop.wait(1.0):
            pass

    def idle(self) -> bool:
        """True when nothing is receiving, queued, predicting or sending."""
        return status_summary(self.journal)["queue_depth"] == 0

    def _adopt_orphans(self) -> None:
        """Journal instance files a kill -9 wrote before their journal row (the sender saw no success for them)."""
        known: dict[str, set[str]] = {}
        for path in self.storage.incoming.glob("*/*/*.dcm"):
            study_uid, series_uid, sop_uid = path.parent.parent.name, path.parent.name, path.stem
            key = self.receiver.unit_key(study_uid, series_uid)
            folder = path.parent.parent if self.receiver.unit_by_study else path.parent
            if key not in known:
                known[key] = set(self.journal.instance_uids(key))
            if sop_uid not in known[key]:
                self.journal.instance_arrived(key, study_uid, str(folder.relative_to(self.storage.root)), sop_uid)

    # the predict thread ---------------------------------------------------------------------------------------

    def _predict_loop(self) -> None:
        """Queue quiet units and predict them one at a time until stopped."""
        self._guarded(self._predict_step)

    def _predict_step(self) -> bool:
        """Queue quiet units, predict one; False when there was nothing to do."""
        self.journal.queue_quiet(self.config.quiet_seconds, self.receiver.busy_units())
        unit = self.journal.claim("queued", "predicting")
        if unit is None:
            return False
        self._predict(unit)
        return True

    def _guarded(self, step) -> None:
        """Run step until stopped, idling when it had nothing to do; an error (journal, disk) never ends the thread."""
        while not self._stop.is_set():
            try:
                busy = step()
            # a thread that died would stop the node silently; the journal keeps the unit, a restart resumes it
            except Exception:
                LOG.exception("%s: unexpected error; retrying in %.0f s", threading.current_thread().name,
                              10 * IDLE_SECONDS)
                self._stop.wait(10 * IDLE_SECONDS)
                continue
            if not busy:
                self._stop.wait(IDLE_SECONDS)

    def _predict(self, unit: Unit) -> None:
        """Predict one unit and record what happened."""
        folder = self.storage.root / unit.folder
        on_disk = len(self.storage.unit_instances(unit.folder))
        if on_disk < unit.instances:   # files deleted after retention and only part of the series re-sent
            reason = (f"{unit.instances - on_disk} of its {unit.instances} instances are no longer on disk "
                      "(deleted after retain_minutes); send the whole series again")
            self.journal.attempt_failed(unit.key, "predicting", reason, 1, 0, permanent=True)
            LOG.error("failed %s: %s", unit.key, reason)
            return
        LOG.info("predicting %s %s (%d instance(s), try %d)", "study" if self.receiver.unit_by_study else "series",
                 unit.key, unit.instances, unit.attempts + 1)
        try:
            result = self.predictor.predict(unit.key, folder)
        except UnitFailed as err:
            state = self.journal.attempt_failed(unit.key, "predicting", err.reason, self.config.retry.max_attempts,
                                                self.config.retry.delay(unit.attempts + 1), permanent=err.permanent)
            LOG.error("%s %s: %s (%s)", "failed" if state == "failed" else "will retry", unit.key, err.reason, state)
            return
        # anything else the model raised is this unit's failure, never the node's
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            state = self.journal.attempt_failed(unit.key, "predicting", reason, self.config.retry.max_attempts,
                                                self.config.retry.delay(unit.attempts + 1))
            LOG.exception("prediction of %s raised (%s)", unit.key, state)
            return
        if self.journal.predicted(unit.key, unit.generation, result.seg_uid, result.seconds):
            LOG.info("predicted %s in %.1f s; SEG %s ready to send", unit.key, result.seconds, result.seg_uid)
        else:
            LOG.info("%s received new instances while predicting; it waits for quiet again", unit.key)

    # the send thread ------------------------------------------------------------------------------------------

    def _send_loop(self) -> None:
        """Send due outbox SEGs until stopped."""
        self._guarded(self._send_step)

    def _send_step(self) -> bool:
        """Send one due SEG; False when none was due (then finished units past their retention are cleaned)."""
        unit = self.journal.claim("sending", "sending")
        if unit is None:
            if time.monotonic() - self._last_sweep > 30:
                self._last_sweep = time.monotonic()
                self._sweep()
            return False
        self._send(unit)
        return True

    def _send(self, unit: Unit) -> None:
        """Send one unit's SEG; done, or a retry after back-off, or failed after max_attempts."""
        start = time.perf_counter()
        path = self.storage.outbox_path(unit.key)
        try:
            if not path.is_file():   # only a hand-deleted outbox gets here: predict again rather than lose the unit
                raise FileNotFoundError(path)
            self._deliver(unit.key, path)
        except FileNotFoundError:
            self.journal.attempt_failed(unit.key, "predicting", "result file missing from the outbox",
                                        self.config.retry.max_attempts, 0, generation=unit.generation)
            return
        except (SendError, ValueError, OSError) as err:   # unreachable, refused, or an outbox file pydicom cannot read
            # a destination that cannot be reached is not this result's fault: it waits in the outbox until the
            # destination returns, however long that takes; tries the destination refuses count
            unreachable = isinstance(err, SendError) and err.unreachable
            limit = sys.maxsize if unreachable else self.config.retry.max_attempts
            state = self.journal.attempt_failed(unit.key, "sending", str(err), limit,
                                                self.config.retry.delay(unit.send_attempts + 1),
                                                generation=unit.generation)
            LOG.warning("sending %s: %s (%s; try %d %s)", unit.key, err, state, unit.send_attempts + 1,
                        "until the destination returns" if unreachable else f"of {self.config.retry.max_attempts}")
            return
        if not self.journal.sent(unit.key, time.perf_counter() - start, unit.generation):
            # the series grew while this SEG went out: its newer SEG (maybe already in the outbox) goes out next
            LOG.info("sent an older SEG %s of %s; the series grew meanwhile and is segmented again",
                     unit.seg_uid, unit.key)
            return
        LOG.info("sent SEG %s of %s", unit.seg_uid, unit.key)
        if not self.config.keep_files:   # delivered: a re-prediction would write it again
            path.unlink(missing_ok=True)
        self._sweep()

    def _drop_delivered_outbox(self) -> int:
        """Delete outbox SEGs of units already done (a kill between the journal's 'sent' and the unlink); how many."""
        dropped = 0
        for path in self.storage.outbox.glob("*.dcm"):
            unit = self.journal.unit(path.stem)
            if unit is None or unit.state == "done":
                path.unlink(missing_ok=True)
                dropped += 1
        return dropped

    def _sweep(self) -> None:
        """Delete the files of units done for longer than retain_minutes (never with keep_files).

        Kept a while because a sender that re-sends a series after a crash may add instances: the
        unit is then segmented again from every instance, old and new.
        """
        if self.config.keep_files:
            return
        for unit in self.journal.expired(time.time() - 60 * self.config.retain_minutes):
            self.storage.forget(unit.key, unit.folder)

    def _deliver(self, key: str, path: Path) -> None:
        """C-STORE (or STOW-RS) one SEG to the configured destination; without one it is kept in results/."""
        if self.config.push == "dicomweb":
            from segkit.pacs.dicomweb import DicomWebClient

            assert self.config.dicomweb is not None
            DicomWebClient(self.config.dicomweb).store([path.read_bytes()])
        elif self.config.destination is not None:
            store_file(self.config, self.config.destination, path, self.config.destination_tls)
        else:
            durable_copy(path, self.storage.seg_result_path(key))


class _HealthHandler(BaseHTTPRequestHandler):
    """GET /health (or /status): the status summary as JSON."""

    journal: Journal

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        """Answer /health and /status; 404 otherwise."""
        if self.path not in ("/health", "/status"):
            self.send_error(404)
            return
        body = json.dumps({"status": "ok", **status_summary(self.journal)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""


def health_server(journal: Journal, port: int) -> ThreadingHTTPServer:
    """A localhost-only HTTP server answering /health, running in a daemon thread."""
    handler = type("HealthHandler", (_HealthHandler,), {"journal": journal})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, name="segkit-health", daemon=True).start()
    return server
