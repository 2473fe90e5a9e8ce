"""Nightly pull (`segkit pull`): find series in the PACS, retrieve them, segment them, store the SEGs back.

Two ways to the same PACS, one pipeline: C-FIND + C-MOVE against ``[source]`` (the node's SCP
receives the C-MOVE sub-operations, so the source must know the node as a modality and be in
``[[peers]]``), or QIDO-RS + WADO-RS against ``[dicomweb]``. The retrieved instances go through the
node's own receiver, journal and worker threads (`node.Node`), so everything the node promises
holds here too. A series (or study) the journal already knows past ``receiving`` is not
retrieved again: a later run with the same query processes nothing twice.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from segkit.errors import UserError
from segkit.pacs.config import NodeConfig
from segkit.pacs.node import Node
from segkit.pacs.send import SendError, associate

LOG = logging.getLogger("segkit.pacs")
FIND_ROOT = "1.2.840.10008.5.1.4.1.2.2.1"   # Study Root Query/Retrieve Information Model - FIND
MOVE_ROOT = "1.2.840.10008.5.1.4.1.2.2.2"   # Study Root Query/Retrieve Information Model - MOVE


@dataclass(frozen=True)
class PullQuery:
    """What to pull: modality, a DICOM date range (YYYYMMDD-YYYYMMDD), a SeriesDescription pattern, or one study."""

    modality: str = ""
    dates: str = ""
    description: str = ""
    study_uid: str = ""


@dataclass
class PullSummary:
    """What a pull run found and did, per unit key."""

    found: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    not_retrieved: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        counts: dict[str, int] = {}
        for state in self.states.values():
            counts[state] = counts.get(state, 0) + 1
        return {"found": len(self.found), "skipped_already_processed": len(self.skipped),
                "retrieved": len(self.retrieved), "states": counts,
                **({"not_retrieved": self.not_retrieved} if self.not_retrieved else {})}


# DIMSE ----------------------------------------------------------------------------------------------------------

def _find(assoc: Any, identifier: Any) -> list[Any]:
    """The matches of one C-FIND (pending statuses), SendError on a failure status."""
    matches = []
    for status, found in assoc.send_c_find(identifier, FIND_ROOT):
        code = getattr(status, "Status", None)
        if code is None:
            raise SendError("C-FIND: connection lost")
        if code in (0xFF00, 0xFF01) and found is not None:
            matches.append(found)
        elif code not in (0x0000, 0xFF00, 0xFF01):
            raise SendError(f"C-FIND answered status 0x{code:04X}")
    return matches


def find_series_dimse(config: NodeConfig, query: PullQuery) -> list[tuple[str, str]]:
    """(StudyInstanceUID, SeriesInstanceUID) of every matching series, by C-FIND at study then series level."""
    from pydicom.dataset import Dataset

    assert config.source is not None
    assoc = associate(config, config.source, [FIND_ROOT])
    try:
        study = Dataset()
        study.QueryRetrieveLevel, study.StudyInstanceUID = "STUDY", query.study_uid
        study.StudyDate, study.ModalitiesInStudy = query.dates, query.modality
        studies = [str(m.StudyInstanceUID) for m in _find(assoc, study)]
        found = []
        for study_uid in studies:
            series = Dataset()
            series.QueryRetrieveLevel, series.StudyInstanceUID, series.SeriesInstanceUID = "SERIES", study_uid, ""
            series.Modality, series.SeriesDescription = query.modality, query.description
            found += [(study_uid, str(m.SeriesInstanceUID)) for m in _find(assoc, series)]
    finally:
        assoc.release()
    return found


def move_dimse(config: NodeConfig, study_uid: str, series_uid: str | None) -> None:
    """C-MOVE a series (or a whole study) from [source] to the node itself; SendError unless all sub-operations succeed."""
    from pydicom.dataset import Dataset

    assert config.source is not None
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
    identifier.StudyInstanceUID = study_uid
    if series_uid:
        identifier.SeriesInstanceUID = series_uid
    assoc = associate(config, config.source, [MOVE_ROOT])
    try:
        final = None
        for status, _ in assoc.send_c_move(identifier, config.ae_title, MOVE_ROOT):
            final = status
    finally:
        assoc.release()
    code = getattr(final, "Status", None)
    if code is None:
        raise SendError("C-MOVE: connection lost")
    if code != 0x0000:
        failed = getattr(final, "NumberOfFailedSuboperations", "?")
        raise SendError(f"C-MOVE answered status 0x{code:04X} ({failed} sub-operation(s) failed)")


# DICOMweb -------------------------------------------------------------------------------------------------------

def find_series_web(config: NodeConfig, query: PullQuery) -> list[tuple[str, str]]:
    """(StudyInstanceUID, SeriesInstanceUID) of every matching series, by QIDO-RS."""
    from segkit.pacs.dicomweb import DicomWebClient, tag_value

    assert config.dicomweb is not None
    client = DicomWebClient(config.dicomweb)
    study_query = {k: v for k, v in (("ModalitiesInStudy", query.modality), ("StudyDate", query.dates),
                                     ("StudyInstanceUID", query.study_uid)) if v}
    found = []
    for study in client.search("studies", study_query):
        study_uid = tag_value(study, "0020000D")
        series_query = {"Modality": query.modality} if query.modality else {}
        # SeriesDescription wildcards are matched here: QIDO-RS servers differ in wildcard support (Orthanc's
        # DICOMweb plugin 1.7 matches "T1*" against nothing), DICOM's own rule is case-sensitive '*' and '?'
        found += [(study_uid, tag_value(series, "0020000E"))
                  for series in client.search("series", series_query, study_uid)
                  if not query.description or fnmatch.fnmatchcase(tag_value(series, "0008103E"), query.description)]
    return found


def retrieve_web(config: NodeConfig, node: Node, study_uid: str, series_uid: str) -> None:
    """WADO-RS a series and hand every instance to the node's receiver; SendError when one is refused."""
    from io import BytesIO

    import pydicom

    from segkit.pacs.dicomweb import DicomWebClient

    assert config.dicomweb is not None
    for data in DicomWebClient(config.dicomweb).retrieve_series(study_uid, series_uid):
        status = node.receiver.accept(partial(pydicom.dcmread, BytesIO(data)), partial(bytes, data), "DICOMWEB")
        if status != 0:
            raise SendError(f"an instance of series {series_uid} was refused (status 0x{status:04X})")


# the run --------------------------------------------------------------------------------------------------------

def pull(config: NodeConfig, query: PullQuery, dicomweb: bool, node: Node, send_timeout: float = 300.0) -> PullSummary:
    """Find, retrieve what the journal does not know yet, and wait until each unit is done or failed.

    Units still waiting for their destination after send_timeout are left to the next run (or to
    `segkit serve`), which resume them from the journal.
    """
    if dicomweb and config.dicomweb is None:
        raise UserError("--dicomweb needs a [dicomweb] section", config.path)
    if not dicomweb and config.source is None:
        raise UserError("a C-FIND/C-MOVE pull needs a [source] section", config.path)
    series = find_series_web(config, query) if dicomweb else find_series_dimse(config, query)
    summary = PullSummary()
    units: dict[str, list[tuple[str, str]]] = {}
    for study_uid, series_uid in series:
        units.setdefault(node.receiver.unit_key(study_uid, series_uid), []).append((study_uid, series_uid))
    summary.found = sorted(units)
    for key, members in sorted(units.items()):
        known = node.journal.unit(key)
        if known is not None and known.state != "receiving":
            summary.skipped.append(key)
            continue
        try:
            for study_uid, series_uid in members:
                if dicomweb:
                    retrieve_web(config, node, study_uid, series_uid)
                else:
                    move_dimse(config, study_uid, None if node.receiver.unit_by_study else series_uid)
                if node.receiver.unit_by_study and not dicomweb:
                    break   # one study-level C-MOVE brought every series of the study
        except SendError as err:   # one unit's retrieval failing must not stop the others; the next run retries it
            LOG.error("retrieving %s failed: %s", key, err)
            summary.not_retrieved[key] = str(err)
            continue
        summary.retrieved.append(key)
        LOG.info("retrieved %s %s", "study" if node.receiver.unit_by_study else "series", key)
    node.journal.queue_now(summary.retrieved)
    _wait(node, summary.retrieved, send_timeout)
    summary.states = {key: unit.state for key in summary.found if (unit := node.journal.unit(key)) is not None}
    return summary


def _wait(node: Node, keys: list[str], send_timeout: float) -> None:
    """Block until every key is done or failed, allowing send_timeout once only sending remains."""
    sending_since: float | None = None
    while True:
        states = {key: unit.state for key in keys if (unit := node.journal.unit(key)) is not None}
        open_states = {s for s in states.values() if s not in ("done", "failed")}
        if not open_states:
            return
        if open_states == {"sending"}:
            sending_since = sending_since or time.monotonic()
            if time.monotonic() - sending_since > send_timeout:
                LOG.warning("%d result(s) still waiting for the destination; the next run sends them",
                            sum(s == "sending" for s in states.values()))
                return
        time.sleep(0.2)
