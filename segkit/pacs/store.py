"""Where the node keeps files, and writing them so that a success answer means the bytes are on disk.

Layout under ``[node] storage``::

    journal.sqlite
    incoming/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm   received instances
    work/<unit>/                                                           one prediction's outputs
    outbox/<unit>.dcm                                                      the SEG to send (UIDs final)
    results/<unit>_stats.json                                              label statistics (JSON)
    results/<unit>_seg.dcm                                                 the SEG, when there is no destination

Every file is written to a temp name in its folder, flushed with fsync, renamed, and the folder
fsynced: after a kill -9 (or power loss) a file is either complete or absent, and
`remove_partial_files` deletes the temp names left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from pathlib import Path

# image storage SOP classes the node stores; anything else (SR, KO, presentation states, SEG,
# RT, encapsulated documents...) is acknowledged and dropped, because it is no input of a model
IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.4": "MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.1": "Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.4.4": "Legacy Converted Enhanced MR Image Storage",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.2": "Legacy Converted Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.128": "Positron Emission Tomography Image Storage",
    "1.2.840.10008.5.1.4.1.1.130": "Enhanced PET Image Storage",
    "1.2.840.10008.5.1.4.1.1.128.1": "Legacy Converted Enhanced PET Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
}
TEMP_PREFIX = ".partial-"
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def valid_uid(uid: str) -> bool:
    """True for a syntactically valid DICOM UID (digits and dots, at most 64 characters): safe as a file name."""
    return 0 < len(uid) <= 64 and bool(_UID.match(uid))


def _fsync_folder(folder: Path) -> None:
    """Make a rename in folder durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_write(path: Path, data: bytes) -> None:
    """Write data to path atomically and durably (temp file, fsync, rename, fsync of the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # pid and thread: two associations may deliver the same instance at once
    tmp = path.parent / f"{TEMP_PREFIX}{path.name}.{os.getpid()}.{threading.get_ident()}"
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_folder(path.parent)


def durable_copy(source: Path, path: Path) -> None:
    """Copy a finished file into place atomically and durably."""
    durable_write(path, source.read_bytes())


class Storage:
    """The node's folders."""

    def __init__(self, root: Path):
        self.root = root
        self.incoming = root / "incoming"
        self.work = root / "work"
        self.outbox = root / "outbox"
        self.results = root / "results"
        for folder in (self.incoming, self.work, self.outbox, self.results):
            folder.mkdir(parents=True, exist_ok=True)

    def instance_path(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        """Where one received instance lives."""
        return self.incoming / study_uid / series_uid / f"{sop_uid}.dcm"

    def free_mb(self) -> float:
        """Free space on the storage's file system, in MB."""
        return shutil.disk_usage(self.root).free / 1e6

    def outbox_path(self, key: str) -> Path:
        """The SEG waiting to be sent for a unit."""
        return self.outbox / f"{key}.dcm"

    def stats_path(self, key: str) -> Path:
        """The statistics JSON of a unit."""
        return self.results / f"{key}_stats.json"

    def seg_result_path(self, key: str) -> Path:
        """Where a unit's SEG is kept when the node has no destination."""
        return self.results / f"{key}_seg.dcm"

    def work_folder(self, key: str) -> Path:
        """A unit's prediction folder."""
        return self.work / key

    def remove_partial_files(self) -> int:
        """Delete temp files an interrupted write left (ours and the pipeline's atomic_path ones); how many."""
        removed = 0
        for path in self.root.rglob(".*"):
            if path.is_file() and path.name != ".lock":
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def unit_instances(self, folder: str) -> list[Path]:
        """The instance files of a unit folder (a series folder, or a study folder with series sub-folders)."""
        return sorted(p for p in (self.root / folder).rglob("*.dcm") if not p.name.startswith("."))

    def forget(self, key: str, folder: str) -> None:
        """Delete a finished unit's received instances, work folder and outbox file (keep_files = false)."""
        shutil.rmtree(self.root / folder, ignore_errors=True)
        shutil.rmtree(self.work_folder(key), ignore_errors=True)
        self.outbox_path(key).unlink(missing_ok=True)
        study = (self.root / folder).parent
        if study != self.incoming and study.is_dir() and not any(study.iterdir()):
            study.rmdir()


def derived_uid(*parts: str) -> str:
    """A DICOM UID that is a pure function of parts: '2.25.' + the first 128 bits of their SHA-256.

    The 2.25 root takes a UUID-sized integer (ISO/IEC 9834-8); hashing the source series, its
    instances and the model identity gives the same SEG UID on every re-run, so a re-send after
    a crash is the same instance to the PACS, never a duplicate.
    """
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))
