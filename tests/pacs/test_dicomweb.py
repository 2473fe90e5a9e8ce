"""The DICOMweb client: credentials from the environment, multipart bodies, HTTPS with the configured CA."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from segkit.errors import UserError
from segkit.pacs.config import DicomWebConfig
from segkit.pacs.dicomweb import DicomWebClient, split_multipart
from segkit.pacs.send import SendError

pytest.importorskip("pynetdicom", reason="the pacs extra (pynetdicom) is not installed")


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
