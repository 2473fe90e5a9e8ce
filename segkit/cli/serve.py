"""`segkit serve --config node.toml`: the DICOM node (receive, predict, send back); `--status` reports on it.

Argument parsing only: the node is `segkit.pacs.node.Node`; see docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json

from segkit.cli.options import add_log_format_option


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the serve subcommand."""
    parser = subparsers.add_parser(
        "serve", help="run a DICOM node: receive studies from the PACS, segment them, send DICOM-SEG back",
        description="A C-STORE SCP for allowlisted peers; each complete series (or study, for multi-channel models) "
                    "is predicted and its DICOM-SEG sent to the configured destination. Needs the pacs extra: "
                    "pip install 'segkit-revmb[pacs]'. Configuration: docs/deployment.md.")
    parser.add_argument("--config", required=True, help="the node's TOML file")
    parser.add_argument("--status", action="store_true",
                        help="print the journal's state (counts per state, queue depth, last errors) as JSON and exit")
    parser.add_argument("--retry-failed", nargs="*", metavar="UID",
                        help="put failed units (these series/study UIDs, or all) back to work and exit: a SEG still "
                             "in the outbox is sent again, the others are predicted again; works while the node runs")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    add_log_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM/SIGINT, or print the status."""
    from segkit.pacs.config import load_config

    config = load_config(args.config)
    if args.status:
        return print_status(config)
    if args.retry_failed is not None:
        return retry_failed(config, args.retry_failed)
    _require_pynetdicom()
    import signal

    from segkit.pacs.node import Node

    setup_logging(args.log_level, args.log_format, "serve")
    node = Node(config)
    node.start()
    signal.signal(signal.SIGTERM, lambda *_: node._stop.set())
    try:
        node.wait()
    except KeyboardInterrupt:
        pass
    node.stop()
    return 0


def setup_logging(level: str, log_format: str, component: str) -> None:
    """The node's log lines on stderr: text with a timestamp, or segkit.logs' JSON lines for collectors."""
    import logging

    from segkit import logs

    logs.configure(log_format, component)
    handler = logging.StreamHandler()
    handler.setFormatter(logs.JsonFormatter(component) if log_format == "json"
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for chatty in ("pynetdicom", "highdicom"):   # per-association and per-SEG chatter; our own lines say what matters
        logging.getLogger(chatty).setLevel(logging.WARNING)


def print_status(config) -> int:
    """Print the journal's summary; a node that never ran is a UserError."""
    from segkit.errors import UserError
    from segkit.pacs.journal import Journal
    from segkit.pacs.node import status_summary

    if not config.journal_path.is_file():
        raise UserError("no journal yet (the node has not run with this storage)", config.journal_path)
    journal = Journal(config.journal_path, read_only=True)
    try:
        print(json.dumps(status_summary(journal), indent=2))
    finally:
        journal.close()
    return 0


def retry_failed(config, keys: list[str]) -> int:
    """Put failed units back to work; print what moved as JSON. 2 when a named UID is not a failed unit."""
    from segkit.errors import UserError
    from segkit.pacs.journal import Journal
    from segkit.pacs.store import Storage

    if not config.journal_path.is_file():
        raise UserError("no journal yet (the node has not run with this storage)", config.journal_path)
    storage = Storage(config.storage)
    journal = Journal(config.journal_path)
    try:
        moved = journal.retry_failed(keys, lambda key: storage.outbox_path(key).is_file())
    finally:
        journal.close()
    if moved["unknown"]:
        raise UserError(f"not a failed unit: {', '.join(moved['unknown'])} (see --status); nothing changed",
                        config.journal_path)
    print(json.dumps(moved, indent=2))
    return 0


def _require_pynetdicom() -> None:
    """pynetdicom is the optional pacs extra: name it when missing."""
    from segkit.errors import UserError

    try:
        import pynetdicom  # noqa: F401
    except ImportError:
        raise UserError("segkit serve needs the optional 'pacs' extra: pip install 'segkit-revmb[pacs]'") from None
