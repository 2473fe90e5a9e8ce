"""The node's C-STORE SCP: who may associate, what is stored, and the status each instance gets.

- Association: the calling AE title (and, where the config gives one, the peer's address) must
  be on ``[[peers]]``; anything else is rejected (A-ASSOCIATE-RJ, "calling AE title not
  recognised") before a byte of data is accepted.
- A unit is complete only after ``quiet_seconds`` without a new instance *and* once every
  association that delivered to it has ended (`busy_units`): a sender pausing mid-series, or a
  write waiting on a slow disk, never lets half a series be predicted.
- An image instance is written durably (`store.durable_write`) and recorded in the journal
  *before* the success status goes back, so an instance the sender saw succeed is never lost.
- Non-image SOP classes (SR, KO, presentation states, SEG...) are acknowledged and not stored.
- A dataset that does not decode, or lacks its UIDs, gets an error status and a log line; the
  node keeps running. Below ``min_free_mb`` of free disk every instance gets 0xA700
  (out of resources) instead of filling the disk.

Logs name instances by their UIDs and the peer by its AE title, never by patient data.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

from segkit.pacs.config import NodeConfig
from segkit.pacs.journal import Journal
from segkit.pacs.store import IMAGE_SOP_CLASSES, Storage, durable_write, valid_uid

LOG = logging.getLogger("segkit.pacs")

STATUS_SUCCESS = 0x0000
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_MISMATCH = 0xA900       # "data set does not match SOP class": required UIDs missing or invalid
STATUS_CANNOT_UNDERSTAND = 0xC210      # the dataset could not be decoded
STATUS_PROCESSING_FAILURE = 0x0110


class Receiver:
    """The event handlers of the SCP, bound to the node's config, storage and journal."""

    def __init__(self, config: NodeConfig, storage: Storage, journal: Journal, unit_by_study: bool,
                 source: str = "push"):
        self.config, self.storage, self.journal = config, storage, journal
        self.unit_by_study = unit_by_study
        self.source = source
        self.received = 0
        # units each open association has delivered to: not complete while their sender is still connected
        self._open: dict[int, set[str]] = {}
        self._open_lock = threading.Lock()

    def busy_units(self) -> frozenset[str]:
        """Units an open association has delivered to (or is delivering to right now)."""
        with self._open_lock:
            return frozenset().union(*self._open.values()) if self._open else frozenset()

    def _deliveries(self, assoc: Any) -> set[str] | None:
        """The busy set of one association (None outside an association: a WADO-RS part)."""
        if assoc is None:
            return None
        with self._open_lock:
            return self._open.setdefault(id(assoc), set())

    def on_closed(self, event: Any) -> None:
        """An association ended (released or aborted): its units may become quiet."""
        with self._open_lock:
            self._open.pop(id(event.assoc), None)

    def on_requested(self, event: Any) -> None:
        """Reject an association from a calling AE title (or address) that is not on the allowlist."""
        requestor = event.assoc.requestor
        title = requestor.primitive.calling_ae_title
        address = requestor.address
        if not self.config.peer_allowed(title, address):
            LOG.warning("association rejected: calling AE %r from %s is not on [[peers]]", title, address)
            event.assoc.acse.send_reject(0x01, 0x01, 0x03)   # rejected-permanent, service user, calling AE unknown
            event.assoc.kill()   # as pynetdicom's own rejection does: lets the DUL send the A-ASSOCIATE-RJ first

    def on_echo(self, event: Any) -> int:
        """C-ECHO: success."""
        return STATUS_SUCCESS

    def on_store(self, event: Any) -> int:
        """C-STORE: store an image instance durably and journal it, then answer; every problem an error status."""
        return self.accept(lambda: event.dataset, event.encoded_dataset, event.assoc.requestor.ae_title, event.assoc)

    def accept(self, decode: Callable[[], Any], encoded: Callable[[], bytes], peer: str, assoc: Any = None) -> int:
        """Check, store and journal one instance (from C-STORE or a WADO-RS part); the DICOM status it earns."""
        try:
            dataset = decode()
            sop_class = str(dataset.SOPClassUID)
            sop_uid = str(dataset.SOPInstanceUID)
            study_uid = str(dataset.StudyInstanceUID)
            series_uid = str(dataset.SeriesInstanceUID)
        except AttributeError as err:
            LOG.error("instance from %s refused: required attribute missing (%s)", peer, err)
            return STATUS_DATASET_MISMATCH
        # decoding an arbitrary peer's bytes can raise anything pydicom has; each is this instance's error
        except Exception as err:
            LOG.error("instance from %s refused: the dataset cannot be decoded (%s: %s)", peer,
                      type(err).__name__, err)
            return STATUS_CANNOT_UNDERSTAND
        if sop_class not in IMAGE_SOP_CLASSES:
            LOG.info("not stored: SOP instance %s of series %s is a non-image object (SOP class %s)",
                     sop_uid, series_uid, sop_class)
            return STATUS_SUCCESS
        bad = [name for name, uid in (("SOPInstanceUID", sop_uid), ("StudyInstanceUID", study_uid),
                                      ("SeriesInstanceUID", series_uid)) if not valid_uid(uid)]
        if bad:
            LOG.error("instance from %s refused: invalid %s", peer, ", ".join(bad))
            return STATUS_DATASET_MISMATCH
        if self.storage.free_mb() < self.config.min_free_mb:
            LOG.error("instance %s of series %s refused: %.0f MB free, below min_free_mb = %.0f (out of resources)",
                      sop_uid, series_uid, self.storage.free_mb(), self.config.min_free_mb)
            return STATUS_OUT_OF_RESOURCES
        deliveries = self._deliveries(assoc)
        if deliveries is not None:   # before the (possibly slow) write: the unit must not look quiet meanwhile
            with self._open_lock:
                deliveries.add(self.unit_key(study_uid, series_uid))
        try:
            self.store(encoded, study_uid, series_uid, sop_uid)
        except OSError as err:
            LOG.error("instance %s of series %s not stored: %s", sop_uid, series_uid, err.strerror or err)
            return STATUS_OUT_OF_RESOURCES
        # the journal (SQLite) failing is this instance's failure: the sender keeps it and retries
        except Exception as err:
            LOG.error("instance %s of series %s not stored: %s: %s", sop_uid, series_uid, type(err).__name__, err)
            return STATUS_PROCESSING_FAILURE
        return STATUS_SUCCESS

    def unit_key(self, study_uid: str, series_uid: str) -> str:
        """The journal key of the unit an instance belongs to."""
        return study_uid if self.unit_by_study else series_uid

    def store(self, encoded: Callable[[], bytes], study_uid: str, series_uid: str, sop_uid: str) -> None:
        """Write the instance as a DICOM file (as received, with file meta) and journal it."""
        path = self.storage.instance_path(study_uid, series_uid, sop_uid)
        key = self.unit_key(study_uid, series_uid)
        missing = not path.exists()
        changed = False
        if missing:   # also a re-sent instance whose file the retention sweep deleted: a reopened unit needs it
            durable_write(path, encoded())
        else:
            # the same SOP Instance UID with other bytes: the PACS corrected or replaced it (another patient's
            # data, a fixed name): keep the new one and segment the unit again, so no SEG keeps the old patient
            data = encoded()
            changed = data != path.read_bytes()
            if changed:
                durable_write(path, data)
        folder = path.parent.parent if self.unit_by_study else path.parent
        self.journal.instance_arrived(key, study_uid, str(folder.relative_to(self.storage.root)), sop_uid, self.source,
                                      restored=missing, changed=changed)
        self.received += 1


def server_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The TLS context of the SCP from [tls] (None: plain DICOM)."""
    if config.tls is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(config.tls.ca) if config.tls.ca else None)
    context.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    context.verify_mode = ssl.CERT_REQUIRED if config.tls.require_client_cert else ssl.CERT_NONE
    return context


def start_server(config: NodeConfig, receiver: Receiver, port: int | None = None) -> Any:
    """Start the SCP in background threads; the pynetdicom server (call .shutdown() to stop)."""
    from pynetdicom import AE, StoragePresentationContexts, evt
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # generated at import time

    ae = AE(ae_title=config.ae_title)
    ae.supported_contexts = StoragePresentationContexts
    ae.add_supported_context(Verification)
    ae.maximum_associations = 16
    # a C-STORE whose fsync waits on a busy disk must not make the node abort its own association
    ae.network_timeout = 600
    handlers: list = [(evt.EVT_REQUESTED, receiver.on_requested), (evt.EVT_C_STORE, receiver.on_store),
                (evt.EVT_C_ECHO, receiver.on_echo), (evt.EVT_RELEASED, receiver.on_closed),
                (evt.EVT_ABORTED, receiver.on_closed), (evt.EVT_CONN_CLOSE, receiver.on_closed)]
    return ae.start_server((config.host, config.port if port is None else port), block=False, evt_handlers=handlers,
                           ssl_context=server_ssl_context(config))
