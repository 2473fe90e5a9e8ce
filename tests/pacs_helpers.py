"""A real Orthanc on localhost for the DICOM node tests, plus DICOM series and node configs to feed it.

`Orthanc` starts the Debian `Orthanc` binary with a generated JSON config (free ports, throwaway
storage, the DICOMweb plugin) and talks to it over its REST API with urllib. When the binary is
absent the tests that need it skip, saying how to install it (scripts/test.sh installs it as root).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from segkit.io.dicom_write import new_uid, write_dicom_series
from segkit.io.image import Geometry
from segkit.phantom import PhantomSpec, make_case

ORTHANC_BINARY = shutil.which("Orthanc") or ("/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None)
PLUGIN_CANDIDATES = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so", "/usr/lib/orthanc/libOrthancDicomWeb.so")
MISSING = "Orthanc is not installed (apt-get install -y orthanc orthanc-dicomweb; scripts/test.sh does it as root)"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
SERIES_SPEC = PhantomSpec(shape=(12, 24, 24), spacing=(3.0, 1.5, 1.5))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dicomweb_plugin() -> str | None:
    """The DICOMweb plugin's shared library, if installed."""
    for candidate in PLUGIN_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    return None


class Orthanc:
    """One Orthanc process with its own storage, HTTP and DICOM ports."""

    def __init__(self, folder: Path, aet: str = "ORTHANC", dicom_port: int | None = None):
        self.folder = folder
        self.aet = aet
        self.http_port, self.dicom_port = free_port(), dicom_port or free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        folder.mkdir(parents=True, exist_ok=True)
        config = {"Name": "segkit-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
                  "HttpPort": self.http_port, "DicomPort": self.dicom_port, "DicomAet": aet,
                  "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "HttpServerEnabled": True,
                  "DicomServerEnabled": True, "DicomCheckCalledAet": False, "DicomAlwaysAllowStore": True,
                  "StableAge": 1, "ConcurrentJobs": 2, "DicomScuTimeout": 10, "DicomAssociationCloseDelay": 0,
                  "JobsHistorySize": 1000, "SaveJobs": False,
                  # a series completed after a crash is segmented again under the same SEG UID: keep the newer SEG
                  "OverwriteInstances": True,
                  "Plugins": [p for p in [dicomweb_plugin()] if p],
                  "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True},
                  "DicomModalities": {}}
        (folder / "orthanc.json").write_text(json.dumps(config))
        self.log = open(folder / "orthanc.log", "wb")
        assert ORTHANC_BINARY is not None
        self.process = subprocess.Popen([ORTHANC_BINARY, str(folder / "orthanc.json")], stdout=self.log,
                                        stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                self.get("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Orthanc did not start; see {folder / 'orthanc.log'}")

    def stop(self) -> None:
        """Terminate the process."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()

    def request(self, method: str, path: str, body: object = None, raw: bytes | None = None, timeout: float = 120):
        """One REST call; the decoded JSON answer (or bytes when not JSON)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as response:
            payload = response.read()
        try:
            return json.loads(payload) if payload else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return payload

    def get(self, path: str):
        """GET path."""
        return self.request("GET", path)

    def upload(self, path: Path) -> dict:
        """POST /instances with one DICOM file."""
        return self.request("POST", "/instances", raw=path.read_bytes())

    def upload_series(self, files: list[Path]) -> str:
        """Upload a series; Orthanc's series id."""
        answers = [self.upload(path) for path in files]
        return answers[0]["ParentSeries"]

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """Declare (or update) a DICOM peer Orthanc may send to and accept queries from."""
        self.request("PUT", f"/modalities/{name}", {"AET": aet, "Host": host, "Port": port, "AllowEcho": True,
                                                    "AllowFind": True, "AllowMove": True, "AllowGet": True,
                                                    "AllowStore": True})

    def route(self, modality: str, resources: list[str], asynchronous: bool = False):
        """Send Orthanc resources (series/study ids) to a modality by C-STORE (Orthanc's routing)."""
        return self.request("POST", f"/modalities/{modality}/store",
                            {"Resources": resources, "Synchronous": not asynchronous})

    def seg_files(self, referenced) -> list[bytes]:
        """The SEG instances in Orthanc that reference one of the series UIDs `referenced`, as DICOM Part 10 bytes.

        Only those: the session's Orthanc also holds the SEGs of the tests run before on this worker.
        """
        return [self.request("GET", "/instances/{}/file".format(
                    self.request("POST", "/tools/lookup", raw=sop.encode())[0]["ID"]))
                for uid, sops in self.seg_references().items() if uid in set(referenced) for sop in sops]

    def seg_references(self) -> dict[str, list[str]]:
        """Referenced source SeriesInstanceUID -> SOP Instance UIDs of the SEGs in Orthanc that reference it."""
        found: dict[str, list[str]] = {}
        for series in self.request("POST", "/tools/find", {"Level": "Series", "Query": {"Modality": "SEG"},
                                                           "Expand": True}):
            for instance in series["Instances"]:
                tags = self.get(f"/instances/{instance}/simplified-tags")
                referenced = tags["ReferencedSeriesSequence"][0]["SeriesInstanceUID"]
                found.setdefault(referenced, []).append(tags["SOPInstanceUID"])
        return found


def dciodvfy_errors(path: Path) -> list[str]:
    """The error lines dicom3tools' IOD validator prints for a file (dciodvfy must be installed)."""
    answer = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (answer.stdout + answer.stderr).splitlines() if line.startswith("Error")]


def write_series(folder: Path, seed: int, description: str = "T1 axial", study_uid: str | None = None,
                 frame_uid: str | None = None, series_number: int = 1, patient: str = "ANON") -> tuple[str, list[Path]]:
    """A phantom MR series as DICOM files in scanner order; (SeriesInstanceUID, files)."""
    images, _, geometry = make_case(seed, SERIES_SPEC)
    uid = new_uid()
    files = write_dicom_series(np.round(images[0]), geometry, folder, description, series_uid=uid,
                               study_uid=study_uid or new_uid(), frame_of_reference_uid=frame_uid or new_uid(),
                               series_number=series_number, patient_id=patient)
    return uid, files


def series_geometry() -> Geometry:
    """The geometry write_series uses."""
    return make_case(0, SERIES_SPEC)[2]


def node_config(path: Path, storage: Path, port: int, model: Path, orthanc: Orthanc | None, *, peers=("ORTHANC",),
                quiet: float = 0.5, extra: str = "", ae_title: str = "SEGKIT") -> Path:
    """Write a node TOML file; the destination is Orthanc when given."""
    lines = ["[node]", f'ae_title = "{ae_title}"', 'host = "127.0.0.1"', f"port = {port}", f'storage = "{storage}"',
             f"quiet_seconds = {quiet}", "min_free_mb = 1", "", "[model]", f'path = "{model}"', 'device = "cpu"',
             "tta = false", ""]
    for peer in peers:
        lines += ["[[peers]]", f'ae_title = "{peer}"', ""]
    if orthanc is not None:
        lines += ["[destination]", f'ae_title = "{orthanc.aet}"', 'host = "127.0.0.1"', f"port = {orthanc.dicom_port}",
                  "", "[source]", f'ae_title = "{orthanc.aet}"', 'host = "127.0.0.1"', f"port = {orthanc.dicom_port}",
                  ""]
    lines += ["[retry]", "max_attempts = 3", "backoff_seconds = 0.5", "backoff_max_seconds = 2", ""]
    path.write_text("\n".join(lines) + extra)
    return path


def wait_for(condition, timeout: float, what: str, interval: float = 0.2):
    """Poll condition() until it returns a truthy value; AssertionError naming what after timeout seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
