"""The `segkit` command: one thin subcommand per pipeline stage, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import sys

from segkit.version import __version__
from segkit.errors import UserError

# Each module defines register(subparsers) which adds its parser and sets `func`.
COMMAND_MODULES = (
    "demo", "convert", "verify", "plan", "preprocess", "train", "predict", "ensemble",
    "find_best", "postprocess", "evaluate", "export", "export_model", "bench_memory",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="segkit", description="Self-configuring 3D medical image segmentation.")
    parser.add_argument("--version", action="version", version=f"segkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"segkit.cli.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line and return exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except UserError as err:
        print(f"segkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
