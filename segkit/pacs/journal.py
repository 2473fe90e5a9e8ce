"""The node's durable journal (SQLite): one row per unit of work and the state it is in.

A *unit* is what one prediction consumes: a series (one-channel models) or a study (models
fed several series through a channel map). States, in order::

    receiving -> queued -> predicting -> sending -> done
                                 \\            \\
                                  +-> failed <-+   (after max_attempts tries, with the reason)

Every change is committed with ``synchronous=FULL`` before the node acts on it, so a kill -9 at
any moment leaves a journal that `recover` turns back into work: ``predicting`` goes back to
``queued`` (the prediction is redone), ``sending`` stays ``sending`` (its result file is on
disk; the SEG's UIDs are derived from the input, so a re-send is the same instance).
``generation`` counts instances that arrived after the unit left ``receiving``: a prediction
that started on an older generation is thrown away and the unit waits for quiet again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

STATES = ("receiving", "queued", "predicting", "sending", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS units (
    key TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    folder TEXT NOT NULL,
    state TEXT NOT NULL,
    generation INTEGER NOT NULL DEFAULT 0,
    instances INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    send_attempts INTEGER NOT NULL DEFAULT 0,
    last_instance_at REAL NOT NULL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    reason TEXT,
    seg_uid TEXT,
    source TEXT NOT NULL DEFAULT 'push',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    predict_seconds REAL,
    send_seconds REAL,
    predict_started_at REAL
);
CREATE INDEX IF NOT EXISTS units_state ON units (state, next_attempt_at);
CREATE TABLE IF NOT EXISTS instances (
    key TEXT NOT NULL,
    sop_uid TEXT NOT NULL,
    PRIMARY KEY (key, sop_uid)
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Unit:
    """One row of the journal."""

    key: str
    study_uid: str
    folder: str
    state: str
    generation: int
    instances: int
    attempts: int
    send_attempts: int
    last_instance_at: float
    next_attempt_at: float
    reason: str | None
    seg_uid: str | None
    source: str
    created_at: float
    updated_at: float
    predict_seconds: float | None
    send_seconds: float | None
    predict_started_at: float | None


class Journal:
    """Thread-safe access to the journal file; every method is one committed transaction."""

    def __init__(self, path: str | Path, read_only: bool = False):
        self.path = Path(path)
        self._lock = threading.RLock()
        if read_only:   # `serve --status` and watchers: never take a write lock beside a running node
            self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=30,
                                       check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # one connection shared by the node's threads behind a lock: SQLite serialises writers anyway
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")   # a committed state survives power loss, not only kill -9
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT (rollback on error) under the lock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def instance_arrived(self, key: str, study_uid: str, folder: str, sop_uid: str, source: str = "push",
                         restored: bool = False, changed: bool = False) -> bool:
        """Record one stored instance of a unit; True when the instance is new to the unit or its content changed.

        A new unit starts receiving, a known one restarts its quiet timer. A new instance for a
        unit past ``receiving`` reopens it (a grown series is segmented again), and so does a known
        instance whose content changed (changed=True: the PACS re-sent it with other data, e.g. the
        patient corrected or replaced, so the SEG, which carries the source's patient, is made
        again); the same instance again (a re-send, identical SOP Instance UID and content) changes
        nothing, except that a *failed* unit whose file had to be restored (restored=True) is
        reopened: the sender is completing it.
        """
        now = time.time()
        with self._transaction() as db:
            new = db.execute("INSERT OR IGNORE INTO instances (key, sop_uid) VALUES (?, ?)", (key, sop_uid)).rowcount > 0
            row = db.execute("SELECT state FROM units WHERE key = ?", (key,)).fetchone()
            if row is None:
                db.execute("INSERT INTO units (key, study_uid, folder, state, instances, last_instance_at, source, "
                           "created_at, updated_at) VALUES (?, ?, ?, 'receiving', 1, ?, ?, ?, ?)",
                           (key, study_uid, folder, now, source, now, now))
                return True
            if not new and not changed:
                if row["state"] in ("receiving", "queued"):
                    db.execute("UPDATE units SET state = 'receiving', last_instance_at = ? WHERE key = ?", (now, key))
                elif row["state"] == "failed" and restored:
                    db.execute("UPDATE units SET state = 'receiving', last_instance_at = ?, updated_at = ?, "
                               "reason = NULL, attempts = 0, send_attempts = 0, next_attempt_at = 0 WHERE key = ?",
                               (now, now, key))
                return False
            added = 1 if new else 0
            if row["state"] == "predicting":   # the running prediction is stale; the worker sees the new generation
                db.execute("UPDATE units SET instances = instances + ?, generation = generation + 1, "
                           "last_instance_at = ?, updated_at = ? WHERE key = ?", (added, now, now, key))
                return True
            db.execute("UPDATE units SET state = 'receiving', instances = instances + ?, generation = generation + 1, "
                       "last_instance_at = ?, updated_at = ?, reason = NULL, attempts = 0, send_attempts = 0, "
                       "next_attempt_at = 0 WHERE key = ?", (added, now, now, key))
            if changed:
                db.execute("INSERT INTO events (at, key, kind, message) VALUES (?, ?, 'reopened', ?)",
                           (now, key, f"instance {sop_uid} re-sent with other content: segmented again"))
        return True

    def instance_uids(self, key: str) -> list[str]:
        """The SOP Instance UIDs a unit was received with, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT sop_uid FROM instances WHERE key = ? ORDER BY sop_uid", (key,)).fetchall()
        return [row[0] for row in rows]

    def queue_quiet(self, quiet_seconds: float, busy: frozenset[str] = frozenset()) -> list[str]:
        """Move units that received nothing for quiet_seconds from receiving to queued; their keys.

        Units in busy (an association that delivered to them is still open) wait whatever the timer says.
        """
        now = time.time()
        with self._transaction() as db:
            keys = [r["key"] for r in db.execute("SELECT key FROM units WHERE state = 'receiving' "
                                                 "AND last_instance_at <= ? ORDER BY last_instance_at",
                                                 (now - quiet_seconds,)) if r["key"] not in busy]
            db.executemany("UPDATE units SET state = 'queued', updated_at = ? WHERE key = ?", [(now, k) for k in keys])
        return keys

    def queue_now(self, keys: list[str]) -> None:
        """Queue receiving units at once (a pull knows its transfer is complete; no quiet period needed)."""
        now = time.time()
        with self._transaction() as db:
            db.executemany("UPDATE units SET state = 'queued', updated_at = ? WHERE key = ? AND state = 'receiving'",
                           [(now, key) for key in keys])

    def claim(self, state: str, new_state: str) -> Unit | None:
        """Take the oldest due unit in state and move it to new_state (None when there is none)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT * FROM units WHERE state = ? AND next_attempt_at <= ? "
                             "ORDER BY next_attempt_at, updated_at LIMIT 1", (state, now)).fetchone()
            if row is None:
                return None
            started = now if new_state == "predicting" else row["predict_started_at"]
            db.execute("UPDATE units SET state = ?, updated_at = ?, predict_started_at = ? WHERE key = ?",
                       (new_state, now, started, row["key"]))
        return Unit(**{**dict(row), "state": new_state, "predict_started_at": started})

    def next_due(self, state: str) -> float | None:
        """When the earliest unit in state becomes due (None when none waits)."""
        with self._lock:
            row = self._db.execute("SELECT MIN(next_attempt_at) FROM units WHERE state = ?", (state,)).fetchone()
        return row[0]

    def predicted(self, key: str, generation: int, seg_uid: str, seconds: float) -> bool:
        """predicting -> sending when nothing arrived meanwhile (True); else back to receiving (False)."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute("SELECT generation FROM units WHERE key = ? AND state = 'predicting'", (key,)).fetchone()
            if row is None:
                return False
            if row["generation"] != generation:
                db.execute("UPDATE units SET state = 'receiving', updated_at = ? WHERE key = ?", (now, key))
                return False
            db.execute("UPDATE units SET state = 'sending', seg_uid = ?, predict_seconds = ?, reason = NULL, "
                       "next_attempt_at = 0, updated_at = ? WHERE key = ?", (seg_uid, seconds, now, key))
        return True

    def sent(self, key: str, seconds: float, generation: int | None = None) -> bool:
        """sending -> done; False (nothing changes) when the unit was reopened since the sent SEG was made.

        With `generation` the SEG that went out must be the unit's current one: a series that grew
        while its older SEG was being sent is segmented again, and that newer SEG must still go out.
        """
        now = time.time()
        current = "" if generation is None else " AND generation = ?"
        with self._transaction() as db:
            done = db.execute("UPDATE units SET state = 'done', send_seconds = ?, reason = NULL, updated_at = ? "
                              f"WHERE key = ? AND state = 'sending'{current}",
                              (seconds, now, key, *(() if generation is None else (generation,)))).rowcount > 0
            if done:
                db.execute("INSERT INTO events (at, key, kind, message) VALUES (?, ?, 'done', 'sent')", (now, key))
        return done

    def attempt_failed(self, key: str, state: str, reason: str, max_attempts: int, delay: float,
                       permanent: bool = False, generation: int | None = None) -> str:
        """Count a failed try in state ('predicting' or 'sending'); retry after delay or fail for good. The new state.

        With `generation` (a send's), a unit reopened since its SEG was made is left as it is (its
        state is returned): the failed SEG is stale, and the grown series is segmented again.
        """
        now = time.time()
        column = "attempts" if state == "predicting" else "send_attempts"
        retry_state = "queued" if state == "predicting" else "sending"
        with self._transaction() as db:
            row = db.execute(f"SELECT {column}, state, generation FROM units WHERE key = ?", (key,)).fetchone()
            if row is None:
                return "missing"
            if generation is not None and (row["state"] != "sending" or row["generation"] != generation):
                return str(row["state"])
            tries = row[0] + 1
            new_state = "failed" if permanent or tries >= max_attempts else retry_state
            db.execute(f"UPDATE units SET state = ?, {column} = ?, reason = ?, next_attempt_at = ?, updated_at = ? "
                       "WHERE key = ?", (new_state, tries, reason, now + delay, now, key))
            db.execute("INSERT INTO events (at, key, kind, message) VALUES (?, ?, ?, ?)",
                       (now, key, "failed" if new_state == "failed" else "retry", f"{state}: {reason}"))
        return new_state

    def retry_failed(self, keys: list[str], has_result) -> dict[str, list[str]]:
        """Put failed units back to work (all of them when keys is empty): one whose SEG is still waiting
        (has_result(key)) to ``sending``, others to ``queued``, tries counted from zero.

        {"sending"|"queued"|"unknown": keys}; when a key is not a failed unit nothing moves.
        """
        now = time.time()
        moved: dict[str, list[str]] = {"sending": [], "queued": [], "unknown": []}
        with self._transaction() as db:
            rows = db.execute("SELECT key, seg_uid FROM units WHERE state = 'failed'").fetchall()
            failed = {row["key"]: row["seg_uid"] for row in rows}
            moved["unknown"] = [key for key in keys if key not in failed]
            if moved["unknown"]:
                return moved
            for key in keys or sorted(failed):
                state = "sending" if failed[key] and has_result(key) else "queued"
                db.execute("UPDATE units SET state = ?, attempts = 0, send_attempts = 0, next_attempt_at = 0, "
                           "reason = NULL, updated_at = ? WHERE key = ?", (state, now, key))
                db.execute("INSERT INTO events (at, key, kind, message) VALUES (?, ?, 'retry', ?)",
                           (now, key, f"failed unit put back to {state} by the operator"))
                moved[state].append(key)
        return moved

    def recover(self) -> dict[str, int]:
        """After a restart: interrupted predictions go back to the queue, receiving units wait a full quiet period.

        The quiet timer restarts because a sender whose transfer the crash cut off re-sends only
        once the node is back; without the restart a half-received series would be predicted at once.
        """
        now = time.time()
        with self._transaction() as db:
            db.execute("UPDATE units SET last_instance_at = ? WHERE state = 'receiving'", (now,))
            predicting = db.execute("UPDATE units SET state = 'queued', updated_at = ? WHERE state = 'predicting'",
                                    (now,)).rowcount
            sending = db.execute("SELECT COUNT(*) FROM units WHERE state = 'sending'").fetchone()[0]
        return {"predicting": predicting, "sending": sending}

    def unit(self, key: str) -> Unit | None:
        """One unit by key."""
        with self._lock:
            row = self._db.execute("SELECT * FROM units WHERE key = ?", (key,)).fetchone()
        return Unit(**dict(row)) if row is not None else None

    def units(self, state: str | None = None) -> list[Unit]:
        """All units (in one state), oldest first."""
        with self._lock:
            query = "SELECT * FROM units" + (" WHERE state = ?" if state else "") + " ORDER BY created_at"
            rows = self._db.execute(query, (state,) if state else ()).fetchall()
        return [Unit(**dict(row)) for row in rows]

    def expired(self, before: float) -> list[Unit]:
        """Done units last changed before a time (their files may go)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM units WHERE state = 'done' AND updated_at < ?", (before,)).fetchall()
        return [Unit(**dict(row)) for row in rows]

    def known(self, key: str) -> bool:
        """True when the unit has a row."""
        return self.unit(key) is not None

    def counts(self) -> dict[str, int]:
        """Units per state (every state listed, zeros included)."""
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM units GROUP BY state").fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({state: n for state, n in rows})
        return counts

    def last_errors(self, limit: int = 10) -> list[dict]:
        """The most recent retries and failures, newest first."""
        with self._lock:
            rows = self._db.execute("SELECT at, key, kind, message FROM events WHERE kind != 'done' "
                                    "ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(row) for row in rows]

    def timings(self) -> dict[str, float | int | None]:
        """Mean predict and send seconds over done units."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*), AVG(predict_seconds), AVG(send_seconds) FROM units "
                                   "WHERE state = 'done'").fetchone()
        return {"done": row[0], "mean_predict_seconds": row[1], "mean_send_seconds": row[2]}
