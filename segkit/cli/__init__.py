"""The `segkit` command: one thin subcommand per pipeline stage, each in its own module."""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from segkit.errors import UserError
from segkit.version import __version__

# Each module defines register(subparsers) which adds its parser and sets `func`.
COMMAND_MODULES = (
    "demo", "convert", "verify", "plan", "preprocess", "train", "predict", "ensemble",
    "find_best", "postprocess", "evaluate", "export", "export_model", "import_nnunet", "bench_memory",
    "bench_model", "sparsify", "choose_pruning", "serve",
)


SINGLE_DASH_WORD = re.compile(r"^-[A-Za-z][A-Za-z_]+$")


class StrictParser(argparse.ArgumentParser):
    """No abbreviated long options, and no multi-letter single-dash word read as a short flag plus value.

    nnU-Net habits: `-chk` must not become `-c hk`, `--save` must not become `--save-probabilities`.
    Words like `-chk` are refused unless a command registers them (as predict does for nnU-Net's flags).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # passes argparse's own arguments through

    def parse_known_args(self, args=None, namespace=None):
        """Refuse unknown single-dash words before argparse splits them (only in leaf parsers)."""
        if args is not None and self._subparsers is None:
            for token in args:
                if token == "--":
                    break
                if SINGLE_DASH_WORD.match(token) and token not in self._option_string_actions:
                    self.error(f"unknown option {token} (segkit's long options take two dashes; "
                               "see docs/coming-from-nnunet.md)")
        return super().parse_known_args(args, namespace)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = StrictParser(prog="segkit", description="Self-configuring 3D medical image segmentation.")
    parser.add_argument("--version", action="version", version=f"segkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=StrictParser)
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
        if getattr(args, "resolve_dataset", False):
            from segkit.cli.datasets import resolve_dataset

            args.dataset = resolve_dataset(args.dataset, args.dataset_id)
        result = args.func(args)
    except UserError as err:
        print(f"segkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
