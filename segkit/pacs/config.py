"""The node's one TOML configuration file (`segkit serve --config node.toml`): read and checked.

Every key, its default and an Orthanc example are in docs/deployment.md. A mistake in the file
(unknown section or key, wrong type, missing required value) is one UserError naming the file
and the key, before anything listens or loads a model.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from segkit.errors import UserError

if sys.version_info >= (3, 11):
    import tomllib
else:   # Python 3.10: the same parser from PyPI (the pacs extra requires it there)
    import tomli as tomllib


@dataclass(frozen=True)
class Peer:
    """A remote DICOM application entity: AE title, and host/port where the node calls it."""

    ae_title: str
    host: str = ""
    port: int = 0


@dataclass(frozen=True)
class TlsConfig:
    """DICOM TLS: the node's certificate and key, the CA that signs peers, whether peers need a certificate."""

    cert: Path
    key: Path
    ca: Path | None = None
    require_client_cert: bool = False


@dataclass(frozen=True)
class ModelConfig:
    """Which model predicts, as `segkit predict -m/-c/-f/--checkpoint/--channel-map` would name it."""

    path: str
    configuration: tuple[str, ...] = ()
    folds: tuple[str, ...] = ()
    checkpoint: str = "final"
    device: str = "cpu"
    channel_map: str | None = None
    tta: bool = True
    threads: int = 0


@dataclass(frozen=True)
class RetryConfig:
    """How often a unit is retried and how long the node waits between tries (doubling, capped)."""

    max_attempts: int = 5
    backoff_seconds: float = 30.0
    backoff_max_seconds: float = 3600.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after the attempt-th failure (1-based): backoff * 2**(attempt-1), capped."""
        # the exponent is bounded: an unreachable destination is retried without limit (a float cannot hold 2**1100)
        return min(self.backoff_max_seconds, self.backoff_seconds * 2 ** min(max(0, attempt - 1), 64))


@dataclass(frozen=True)
class DicomWebConfig:
    """A DICOMweb service (QIDO-RS / WADO-RS pull, STOW-RS push) and its authentication."""

    url: str
    auth: str = "none"            # none | basic | token
    username: str = ""
    password_env: str = ""        # the secret is read from this environment variable, never from the file
    token_env: str = ""
    ca: Path | None = None
    timeout_seconds: float = 60.0

    def secret(self) -> str:
        """The password or token from the environment; a UserError when it is unset."""
        name = self.token_env if self.auth == "token" else self.password_env
        value = os.environ.get(name, "")
        if not value:
            raise UserError(f"[dicomweb] auth = {self.auth!r} needs the environment variable {name} to be set")
        return value


@dataclass(frozen=True)
class NodeConfig:
    """Everything the node needs: who it is, who may talk to it, where it keeps files, model, destination."""

    path: Path
    ae_title: str
    port: int
    storage: Path
    host: str = "0.0.0.0"
    quiet_seconds: float = 10.0
    min_free_mb: float = 1024.0
    health_port: int = 0
    keep_files: bool = False
    peers: tuple[Peer, ...] = ()
    model: ModelConfig | None = None
    destination: Peer | None = None
    source: Peer | None = None
    dicomweb: DicomWebConfig | None = None
    push: str = "dicom"           # where SEGs go: "dicom" (C-STORE to [destination]) or "dicomweb" (STOW-RS)
    retry: RetryConfig = field(default_factory=RetryConfig)
    tls: TlsConfig | None = None
    destination_tls: bool = False
    retain_minutes: float = 60.0

    @property
    def journal_path(self) -> Path:
        """The SQLite journal."""
        return self.storage / "journal.sqlite"

    def peer_allowed(self, ae_title: str, address: str) -> bool:
        """True when the calling AE title is on the allowlist (and its address matches, where one is given)."""
        for peer in self.peers:
            if peer.ae_title == ae_title.strip() and (not peer.host or peer.host == address):
                return True
        return False


_SECTIONS: dict[str, set[str]] = {
    "node": {"ae_title", "host", "port", "storage", "quiet_seconds", "min_free_mb", "health_port", "keep_files", "push",
             "retain_minutes"},
    "model": {"path", "configuration", "folds", "checkpoint", "device", "channel_map", "tta", "threads"},
    "destination": {"ae_title", "host", "port", "tls"},
    "source": {"ae_title", "host", "port"},
    "retry": {"max_attempts", "backoff_seconds", "backoff_max_seconds"},
    "tls": {"cert", "key", "ca", "require_client_cert"},
    "dicomweb": {"url", "auth", "username", "password_env", "token_env", "ca", "timeout_seconds"},
    "peers": set(),
}
_PEER_KEYS = {"ae_title", "address"}


class _Reader:
    """Typed access to one TOML table, every problem a UserError naming the file and key."""

    def __init__(self, path: Path, section: str, table: dict[str, Any]):
        self.path, self.section, self.table = path, section, table

    def fail(self, key: str, problem: str) -> UserError:
        """The error for [section] key."""
        return UserError(f"[{self.section}] {key}: {problem}", self.path)

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = None, required: bool = False) -> Any:
        """The value of key checked against kind (bool is never an int here)."""
        if key not in self.table:
            if required:
                raise self.fail(key, "missing (required)")
            return default
        value = self.table[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise self.fail(key, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        if not isinstance(value, kinds):
            raise self.fail(key, f"expected {'/'.join(k.__name__ for k in kinds)}, got {value!r}")
        return value

    def ae_title(self, key: str = "ae_title") -> str:
        """A DICOM AE title: 1-16 printable ASCII characters, no backslash."""
        value = self.get(key, str, required=True).strip()
        if not 0 < len(value) <= 16 or not value.isascii() or "\\" in value or not value.isprintable():
            raise self.fail(key, f"{value!r} is not a DICOM AE title (1-16 ASCII characters)")
        return value

    def port(self, key: str, default: int | None = None) -> int:
        """A TCP port 1-65535 (0 allowed only when default is 0: disabled)."""
        value = self.get(key, int, default, required=default is None)
        if not (0 < value < 65536 or (value == 0 and default == 0)):
            raise self.fail(key, f"{value} is not a TCP port")
        return value

    def positive(self, key: str, default: float) -> float:
        """A number >= 0."""
        value = float(self.get(key, (int, float), default))
        if value < 0:
            raise self.fail(key, f"must be >= 0, got {value}")
        return value

    def file(self, key: str, required: bool = True) -> Path | None:
        """A path to an existing file, relative paths taken from the config file's folder."""
        text = self.get(key, str, required=required)
        if text is None:
            return None
        path = (self.path.parent / text).resolve()
        if not path.is_file():
            raise self.fail(key, f"file not found: {path}")
        return path


def _peer(reader: _Reader, with_address: bool = True) -> Peer:
    """A Peer from a [destination]/[source] table."""
    return Peer(reader.ae_title(), reader.get("host", str, required=with_address), reader.port("port"))


def _str_list(reader: _Reader, key: str) -> tuple[str, ...]:
    """A string or a list of strings as a tuple."""
    value = reader.get(key, (str, list), [])
    values = [value] if isinstance(value, str) else value
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in values):
        raise reader.fail(key, "expected a string or a list of strings")
    return tuple(str(v) for v in values)


def _check_keys(path: Path, data: dict[str, Any]) -> None:
    """Unknown sections or keys are mistakes (a typo must not silently fall back to a default)."""
    for section, table in data.items():
        if section not in _SECTIONS:
            raise UserError(f"unknown section [{section}] (known: {', '.join(sorted(_SECTIONS))})", path)
        if section == "peers":
            if not isinstance(table, list):
                raise UserError("peers must be an array of tables: [[peers]] ae_title = \"...\"", path)
            for peer in table:
                unknown = set(peer) - _PEER_KEYS
                if unknown:
                    raise UserError(f"[[peers]] unknown key(s) {sorted(unknown)} (known: {sorted(_PEER_KEYS)})", path)
            continue
        if not isinstance(table, dict):
            raise UserError(f"[{section}] must be a table", path)
        unknown = set(table) - _SECTIONS[section]
        if unknown:
            raise UserError(f"[{section}] unknown key(s) {sorted(unknown)} (known: {sorted(_SECTIONS[section])})", path)


def _model(path: Path, table: dict[str, Any]) -> ModelConfig:
    """The [model] section."""
    reader = _Reader(path, "model", table)
    model_path = reader.get("path", str, required=True)
    resolved = (path.parent / model_path).resolve()
    if not resolved.exists():
        raise reader.fail("path", f"model not found: {resolved}")
    return ModelConfig(str(resolved), _str_list(reader, "configuration"), _str_list(reader, "folds"),
                       reader.get("checkpoint", str, "final"), reader.get("device", str, "cpu"),
                       reader.get("channel_map", str), reader.get("tta", bool, True), reader.get("threads", int, 0))


def _dicomweb(path: Path, table: dict[str, Any]) -> DicomWebConfig:
    """The [dicomweb] section."""
    reader = _Reader(path, "dicomweb", table)
    url = reader.get("url", str, required=True).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise reader.fail("url", f"{url!r} is not an http(s) URL")
    auth = reader.get("auth", str, "none")
    if auth not in ("none", "basic", "token"):
        raise reader.fail("auth", f"{auth!r} is not one of none, basic, token")
    config = DicomWebConfig(url, auth, reader.get("username", str, ""), reader.get("password_env", str, ""),
                            reader.get("token_env", str, ""), reader.file("ca", required=False),
                            reader.positive("timeout_seconds", 60.0))
    if auth == "basic" and not (config.username and config.password_env):
        raise reader.fail("auth", "basic authentication needs username and password_env")
    if auth == "token" and not config.token_env:
        raise reader.fail("auth", "token authentication needs token_env")
    if auth != "none" and url.startswith("http://") and not url.startswith(("http://127.0.0.1", "http://localhost")):
        raise reader.fail("url", "credentials are only sent over https (or to localhost)")
    return config


def load_config(path: str | Path) -> NodeConfig:
    """Read and check the node's TOML file; any mistake is a UserError naming the file and key."""
    path = Path(path).resolve()
    if not path.is_file():
        raise UserError("node configuration not found", path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"not valid TOML ({err})", path) from None
    _check_keys(path, data)
    node = _Reader(path, "node", data.get("node", {}))
    storage = (path.parent / node.get("storage", str, required=True)).resolve()
    peers = []
    for entry in data.get("peers", []):
        reader = _Reader(path, "peers", entry)
        peers.append(Peer(reader.ae_title(), reader.get("address", str, "")))
    tls = None
    if "tls" in data:
        reader = _Reader(path, "tls", data["tls"])
        cert, key = reader.file("cert"), reader.file("key")
        assert cert is not None and key is not None
        tls = TlsConfig(cert, key, reader.file("ca", required=False), reader.get("require_client_cert", bool, False))
    retry_reader = _Reader(path, "retry", data.get("retry", {}))
    retry = RetryConfig(max(1, retry_reader.get("max_attempts", int, 5)), retry_reader.positive("backoff_seconds", 30),
                        retry_reader.positive("backoff_max_seconds", 3600))
    destination = source = None
    destination_tls = False
    if "destination" in data:
        reader = _Reader(path, "destination", data["destination"])
        destination, destination_tls = _peer(reader), reader.get("tls", bool, False)
    if "source" in data:
        source = _peer(_Reader(path, "source", data["source"]))
    push = node.get("push", str, "dicom")
    if push not in ("dicom", "dicomweb"):
        raise node.fail("push", f"{push!r} is not dicom or dicomweb")
    dicomweb = _dicomweb(path, data["dicomweb"]) if "dicomweb" in data else None
    if push == "dicomweb" and dicomweb is None:
        raise node.fail("push", "push = \"dicomweb\" needs a [dicomweb] section")
    return NodeConfig(path, node.ae_title(), node.port("port", 11112), storage, node.get("host", str, "0.0.0.0"),
                      node.positive("quiet_seconds", 10.0), node.positive("min_free_mb", 1024.0),
                      node.port("health_port", 0), node.get("keep_files", bool, False), tuple(peers),
                      _model(path, data["model"]) if "model" in data else None, destination, source, dicomweb, push,
                      retry, tls, destination_tls, node.positive("retain_minutes", 60.0))
