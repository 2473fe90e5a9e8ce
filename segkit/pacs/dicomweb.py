"""A small DICOMweb client on the standard library: QIDO-RS search, WADO-RS series retrieval, STOW-RS store.

Orthanc's DICOMweb plugin, dcm4chee and the cloud healthcare APIs speak it. Authentication is
none, HTTP basic (username + a password from an environment variable) or a bearer token (from an
environment variable); credentials only travel over https (or to localhost), which
`config.load_config` enforces. ``ca`` names the CA bundle that verifies a site's certificate.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any

from segkit.pacs.config import DicomWebConfig
from segkit.pacs.send import SendError


class DicomWebClient:
    """Requests against one DICOMweb base URL with the configured authentication."""

    def __init__(self, config: DicomWebConfig):
        self.config = config
        self.context = ssl.create_default_context(cafile=str(config.ca)) if config.ca else None

    def _headers(self, accept: str) -> dict[str, str]:
        """Accept plus the Authorization header the config asks for."""
        headers = {"Accept": accept}
        if self.config.auth == "basic":
            token = base64.b64encode(f"{self.config.username}:{self.config.secret()}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        elif self.config.auth == "token":
            headers["Authorization"] = f"Bearer {self.config.secret()}"
        return headers

    def _request(self, method: str, path: str, accept: str, body: bytes | None = None,
                 content_type: str | None = None) -> tuple[bytes, str]:
        """One HTTP request; (body, content type). SendError for HTTP errors and unreachable servers."""
        headers = self._headers(accept)
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.config.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.config.timeout_seconds, context=self.context) as answer:
                return answer.read(), answer.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            # bad gateway / unavailable / gateway timeout: the server (or the one behind its proxy) is down
            raise SendError(f"DICOMweb {method} {path}: HTTP {err.code} {err.reason}",
                            unreachable=err.code in (502, 503, 504)) from None
        except (urllib.error.URLError, OSError) as err:
            raise SendError(f"DICOMweb {self.config.url} unreachable ({getattr(err, 'reason', err)})",
                            unreachable=True) from None

    def search(self, level: str, query: dict[str, str], study_uid: str | None = None) -> list[dict[str, Any]]:
        """QIDO-RS: studies (level 'studies') or a study's series ('series'); DICOM JSON objects."""
        path = f"/studies/{study_uid}/series" if level == "series" and study_uid else f"/{level}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        body, _ = self._request("GET", path, "application/dicom+json")
        return json.loads(body) if body.strip() else []

    def retrieve_series(self, study_uid: str, series_uid: str) -> list[bytes]:
        """WADO-RS: every instance of a series as DICOM Part 10 bytes."""
        body, content_type = self._request("GET", f"/studies/{study_uid}/series/{series_uid}",
                                           'multipart/related; type="application/dicom"')
        return split_multipart(body, content_type)

    def store(self, instances: list[bytes]) -> None:
        """STOW-RS: store DICOM Part 10 instances; SendError unless every one was accepted."""
        boundary = uuid.uuid4().hex
        parts = b"".join(b"--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + data + b"\r\n"
                         for data in instances)
        body = parts + b"--" + boundary.encode() + b"--\r\n"
        answer, _ = self._request("POST", "/studies", "application/dicom+json", body,
                                  f'multipart/related; type="application/dicom"; boundary={boundary}')
        result = json.loads(answer) if answer.strip() else {}
        failed = result.get("00081198", {}).get("Value") if isinstance(result, dict) else None
        if failed:
            raise SendError(f"DICOMweb STOW-RS refused {len(failed)} instance(s)")


def split_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The parts of a multipart/related body (their payloads, headers stripped)."""
    boundary = None
    for item in content_type.split(";"):
        key, _, value = item.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    if boundary is None:
        raise SendError(f"DICOMweb answer is not multipart (Content-Type {content_type!r})")
    parts = []
    for chunk in body.split(b"--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        _, separator, payload = chunk.partition(b"\r\n\r\n")
        if separator:
            parts.append(payload.removesuffix(b"\r\n"))
    return parts


def tag_value(item: dict[str, Any], tag: str) -> str:
    """The first value of a DICOM JSON attribute ('' when absent)."""
    values = item.get(tag, {}).get("Value") or [""]
    value = values[0]
    return str(value.get("Alphabetic", "")) if isinstance(value, dict) else str(value)
