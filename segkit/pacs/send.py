"""Sending results: C-STORE of a DICOM file to a peer (optionally over TLS), as the node's SCU."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from segkit.pacs.config import NodeConfig, Peer

ASSOCIATION_TIMEOUT = 10.0


class SendError(Exception):
    """The destination did not take the instance (unreachable, rejected, or a failure status).

    `unreachable`: it could not be reached at all (no connection, or the connection was lost), which
    is not the result's fault: the node retries such sends until the destination returns instead of
    counting them against max_attempts.
    """

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


def client_ssl_context(config: NodeConfig) -> ssl.SSLContext:
    """TLS context for calling a peer: the [tls] CA verifies it; the node's certificate identifies us."""
    assert config.tls is not None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.tls.ca) if config.tls.ca else None)
    context.check_hostname = False   # PACS certificates name AE titles or internal hosts, rarely the address dialled
    context.load_cert_chain(str(config.tls.cert), str(config.tls.key))
    return context


def connection_problem(peer: Peer, context: ssl.SSLContext | None, waited: float) -> str:
    """Why no (TLS) connection to peer could be made, in the OSError's own words, for the log.

    pynetdicom reports a refused or failed connection only as an aborted association, which sends
    whoever reads the log looking for a DICOM problem; so a connection that failed fast is tried
    once more here to learn why. One that timed out is not tried again (that would double the wait).
    """
    address = f"{peer.host}:{peer.port}"
    if waited >= ASSOCIATION_TIMEOUT:
        return f"no answer from {address} within {ASSOCIATION_TIMEOUT:g} s (connection timed out)"
    try:
        with socket.create_connection((peer.host, peer.port), timeout=ASSOCIATION_TIMEOUT) as sock:
            if context is not None:
                context.wrap_socket(sock, server_hostname=peer.host).close()
    except ConnectionRefusedError:
        return f"connection refused by {address} (nothing listens on that port: is it down?)"
    except ssl.SSLError as err:
        return f"TLS handshake with {address} failed ({err.reason or err})"
    except TimeoutError:
        return f"no answer from {address} within {ASSOCIATION_TIMEOUT:g} s (connection timed out)"
    except OSError as err:
        return f"cannot connect to {address} ({err.strerror or err})"
    return f"cannot connect to {address} (it accepts connections again now)"


def associate(config: NodeConfig, peer: Peer, contexts: list, tls: bool = False):
    """An established association with a peer; SendError when it cannot be made."""
    from pynetdicom import AE, evt

    ae = AE(ae_title=config.ae_title)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = ASSOCIATION_TIMEOUT
    ae.connection_timeout = ASSOCIATION_TIMEOUT
    for context in contexts:
        ae.add_requested_context(*context) if isinstance(context, tuple) else ae.add_requested_context(context)
    ssl_context = client_ssl_context(config) if tls else None
    connected: list[bool] = []
    start = time.monotonic()
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title,
                         tls_args=(ssl_context, peer.host) if ssl_context is not None else None,
                         evt_handlers=[(evt.EVT_CONN_OPEN, lambda event: connected.append(True))])
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise SendError(f"association with {peer.ae_title} at {peer.host}:{peer.port} rejected")
    if not connected:   # pynetdicom calls this "aborted" too; it is a network problem, not a DICOM one
        problem = connection_problem(peer, ssl_context, time.monotonic() - start)
        raise SendError(f"could not connect to {peer.ae_title}: {problem}", unreachable=True)
    state = "aborted" if assoc.is_aborted else "unreachable"
    raise SendError(f"association with {peer.ae_title} at {peer.host}:{peer.port} {state}", unreachable=True)


def store_file(config: NodeConfig, peer: Peer, path: Path, tls: bool = False) -> None:
    """C-STORE one DICOM file to peer; SendError unless the status is success (or a warning)."""
    import pydicom

    dataset = pydicom.dcmread(path)
    syntax = dataset.file_meta.TransferSyntaxUID
    assoc = associate(config, peer, [(dataset.SOPClassUID, [syntax])], tls)
    try:
        status = assoc.send_c_store(dataset)
    finally:
        assoc.release()
    code = getattr(status, "Status", None)
    if code is None:
        raise SendError(f"no C-STORE response from {peer.ae_title} (connection lost)", unreachable=True)
    if code != 0 and not 0xB000 <= code <= 0xBFFF:
        raise SendError(f"{peer.ae_title} answered C-STORE with status 0x{code:04X}")
