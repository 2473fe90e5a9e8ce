"""Sending results: C-STORE of a DICOM file to a peer (optionally over TLS), as the node's SCU."""

from __future__ import annotations

import ssl
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


def associate(config: NodeConfig, peer: Peer, contexts: list, tls: bool = False):
    """An established association with a peer; SendError when it cannot be made."""
    from pynetdicom import AE

    ae = AE(ae_title=config.ae_title)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = ASSOCIATION_TIMEOUT
    ae.connection_timeout = ASSOCIATION_TIMEOUT
    for context in contexts:
        ae.add_requested_context(*context) if isinstance(context, tuple) else ae.add_requested_context(context)
    tls_args = (client_ssl_context(config), peer.host) if tls else None
    assoc = ae.associate(peer.host, peer.port, ae_title=peer.ae_title, tls_args=tls_args)
    if not assoc.is_established:
        state = "rejected" if assoc.is_rejected else "aborted" if assoc.is_aborted else "unreachable"
        raise SendError(f"association with {peer.ae_title} at {peer.host}:{peer.port} {state}",
                        unreachable=state != "rejected")
    return assoc


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
