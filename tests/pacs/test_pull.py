"""Nightly pull against a real Orthanc: C-FIND/C-MOVE and QIDO/WADO/STOW; a repeated run processes nothing."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pacs_helpers import dicomweb_plugin, free_port, node_config, write_series

from segkit.cli import main
from segkit.errors import UserError
from segkit.pacs.config import DicomWebConfig
from segkit.pacs.dicomweb import DicomWebClient, split_multipart
from segkit.pacs.send import SendError

pytest.importorskip("pynetdicom", reason="the pacs extra (pynetdicom) is not installed")


def _upload(orthanc, tmp_path, tag: str, count: int) -> dict[str, str]:
    """count matching series ('<tag> T1') plus one that must not match ('<tag> FLAIR'); uid -> Orthanc id."""
    matching = {}
    for seed in range(count):
        uid, files = write_series(tmp_path / f"{tag}{seed}", 200 + seed, f"{tag} T1")
        matching[uid] = orthanc.upload_series(files)
    _, files = write_series(tmp_path / f"{tag}flair", 299, f"{tag} FLAIR")
    orthanc.upload_series(files)
    return matching


def _pull(config, capsys, *flags) -> dict:
    """Run `segkit pull`; its JSON summary."""
    capsys.readouterr()
    assert main(["pull", "--config", str(config), "--modality", "MR", *flags]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_a_c_find_c_move_pull_processes_the_matches_once(tmp_path, orthanc, one_channel_model, capsys):
    matching = _upload(orthanc, tmp_path, "CMOVE", 3)
    port = free_port()
    # Orthanc finds a C-MOVE destination by AE title: one title per node on the session's Orthanc
    config = node_config(tmp_path / "node.toml", tmp_path / "storage", port, one_channel_model, orthanc,
                         ae_title="PULLNODE")
    orthanc.add_modality("puller", "PULLNODE", port)
    first = _pull(config, capsys, "--description", "CMOVE T1*")
    assert first == {"found": 3, "skipped_already_processed": 0, "retrieved": 3, "states": {"done": 3}}
    references = orthanc.seg_references()
    assert {uid: len(references.get(uid, [])) for uid in matching} == dict.fromkeys(matching, 1)
    again = _pull(config, capsys, "--description", "CMOVE T1*")
    assert again == {"found": 3, "skipped_already_processed": 3, "retrieved": 0, "states": {"done": 3}}


@pytest.mark.slow
def test_a_dicomweb_pull_stores_back_by_stow_and_processes_the_matches_once(tmp_path, orthanc, one_channel_model,
                                                                           capsys):
    if dicomweb_plugin() is None:
        pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install -y orthanc-dicomweb)")
    matching = _upload(orthanc, tmp_path, "WEB", 2)
    config = node_config(tmp_path / "node.toml", tmp_path / "storage", free_port(), one_channel_model, None)
    text = config.read_text().replace("min_free_mb = 1", 'min_free_mb = 1\npush = "dicomweb"')
    config.write_text(text + f'\n[dicomweb]\nurl = "{orthanc.url}/dicom-web"\n')
    first = _pull(config, capsys, "--dicomweb", "--description", "WEB T1*")
    assert first == {"found": 2, "skipped_already_processed": 0, "retrieved": 2, "states": {"done": 2}}
    references = orthanc.seg_references()
    assert {uid: len(references.get(uid, [])) for uid in matching} == dict.fromkeys(matching, 1)
    again = _pull(config, capsys, "--dicomweb", "--description", "WEB T1*")
    assert again["retrieved"] == 0 and again["skipped_already_processed"] == 2


def test_bad_date_ranges_are_user_errors(tmp_path, capsys):
    assert main(["pull", "--config", str(tmp_path / "missing.toml"), "--dates", "2026-01-01"]) == 2
    assert "--dates '2026-01-01' must be YYYYMMDD" in capsys.readouterr().err


class _Recorder(BaseHTTPRequestHandler):
    """Answers QIDO with one study and records the Authorization header it got."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802
        self.seen.append(self.headers.get("Authorization", ""))
        body = json.dumps([{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}}]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/dicom+json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("auth, expected", [("basic", "Basic " + base64.b64encode(b"segkit:s3cret").decode()),
                                            ("token", "Bearer s3cret"), ("none", "")])
def test_dicomweb_sends_basic_or_token_credentials_from_the_environment(monkeypatch, auth, expected):
    monkeypatch.setenv("SEGKIT_TEST_SECRET", "s3cret")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        _Recorder.seen = []
        config = DicomWebConfig(f"http://127.0.0.1:{server.server_address[1]}", auth, "segkit", "SEGKIT_TEST_SECRET",
                                "SEGKIT_TEST_SECRET")
        assert DicomWebClient(config).search("studies", {"ModalitiesInStudy": "MR"})[0]["0020000D"]["Value"] == ["1.2.3"]
        assert _Recorder.seen == [expected]
    finally:
        server.shutdown()


def test_a_missing_secret_is_a_user_error(monkeypatch):
    monkeypatch.delenv("SEGKIT_NOT_SET", raising=False)
    config = DicomWebConfig("https://pacs.example/dicom-web", "token", token_env="SEGKIT_NOT_SET")
    with pytest.raises(UserError, match="SEGKIT_NOT_SET"):
        DicomWebClient(config).search("studies", {})


def test_multipart_bodies_split_into_their_parts():
    body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nAAA\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nBB\r\n--b1--"
    assert split_multipart(body, 'multipart/related; type="application/dicom"; boundary=b1') == [b"AAA", b"BB"]


def test_dicomweb_over_https_trusts_the_configured_ca(tmp_path, monkeypatch):
    import ssl
    import subprocess

    cert, key = tmp_path / "web.crt", tmp_path / "web.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("SEGKIT_TEST_SECRET", "s3cret")
    try:
        _Recorder.seen = []
        url = f"https://localhost:{server.server_address[1]}"
        trusted = DicomWebConfig(url, "token", token_env="SEGKIT_TEST_SECRET", ca=cert, timeout_seconds=10)
        assert DicomWebClient(trusted).search("studies", {}) and _Recorder.seen == ["Bearer s3cret"]
        untrusted = DicomWebConfig(url, "token", token_env="SEGKIT_TEST_SECRET", timeout_seconds=10)
        with pytest.raises(SendError, match="unreachable"):   # an unknown certificate: no request, no token sent
            DicomWebClient(untrusted).search("studies", {})
        assert _Recorder.seen == ["Bearer s3cret"]
    finally:
        server.shutdown()
