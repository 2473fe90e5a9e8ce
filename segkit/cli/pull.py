"""`segkit pull --config node.toml --modality MR --dates 20260101-20260131`: the nightly query/retrieve run.

Argument parsing only: the run is `segkit.pacs.pull.pull` over a `segkit.pacs.node.Node`; see docs/deployment.md.
"""

from __future__ import annotations

import argparse
import json
import re

from segkit.cli.options import add_log_format_option

DATE_RANGE = re.compile(r"^(\d{8})?(-(\d{8})?)?$")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the pull subcommand."""
    parser = subparsers.add_parser(
        "pull", help="query the PACS (C-FIND or QIDO-RS), retrieve matching series, segment them, store SEGs back",
        description="Finds series matching the query in [source] by C-FIND (or [dicomweb] by QIDO-RS with "
                    "--dicomweb), retrieves those the node's journal does not know yet by C-MOVE (or WADO-RS), "
                    "predicts them as `segkit serve` does and stores the DICOM-SEGs back. A later run with the same "
                    "query processes nothing twice. Exit 1 when a unit failed.")
    parser.add_argument("--config", required=True, help="the node's TOML file (the same as segkit serve's)")
    parser.add_argument("--dicomweb", action="store_true", help="query and retrieve over DICOMweb instead of DIMSE")
    parser.add_argument("--modality", default="", help="e.g. MR (DICOM Modality / ModalitiesInStudy)")
    parser.add_argument("--dates", default="", help="StudyDate or range YYYYMMDD-YYYYMMDD (either end may be open)")
    parser.add_argument("--description", default="", help="SeriesDescription pattern, DICOM wildcards: 'T1*'")
    parser.add_argument("--study-uid", default="", help="only this study")
    parser.add_argument("--send-timeout", type=float, default=300.0,
                        help="seconds to keep retrying a destination that is down before leaving the results to "
                             "the next run (default 300)")
    parser.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    add_log_format_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Pull, print the summary as JSON; 1 when a unit failed."""
    from segkit.cli.serve import _require_pynetdicom, setup_logging
    from segkit.errors import UserError
    from segkit.pacs.config import load_config

    if not DATE_RANGE.match(args.dates):
        raise UserError(f"--dates {args.dates!r} must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    config = load_config(args.config)
    _require_pynetdicom()
    from segkit.pacs.node import Node
    from segkit.pacs.pull import PullQuery, pull
    from segkit.pacs.send import SendError

    setup_logging(args.log_level, args.log_format, "pull")
    node = Node(config, source="pull")
    node.start()
    try:
        summary = pull(config, PullQuery(args.modality, args.dates, args.description, args.study_uid),
                       args.dicomweb, node, args.send_timeout)
    except SendError as err:   # the PACS refused or is unreachable: the run cannot start, one line, exit 2
        raise UserError(f"pull stopped: {err}", config.path) from None
    finally:
        node.stop()
    print(json.dumps(summary.as_dict(), indent=2))
    return 1 if "failed" in summary.states.values() or summary.not_retrieved else 0
