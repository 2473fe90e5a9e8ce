"""The `segkit` command: one thin subcommand per pipeline stage, each in its own module."""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import sys

from segkit import logs
from segkit.errors import UserError
from segkit.version import __version__

# Each module defines register(subparsers) which adds its parser and sets `func`.
COMMAND_MODULES = (
    "demo", "convert", "verify", "plan", "preprocess", "train", "predict", "ensemble",
    "find_best", "postprocess", "evaluate", "export", "export_model", "import_nnunet", "bench_memory",
    "bench_model", "sparsify", "choose_pruning", "serve", "pull", "calibrate_uncertainty",
)


SINGLE_DASH_WORD = re.compile(r"^-[A-Za-z][A-Za-z_]+$")

# nnU-Net v2 flags with no segkit spelling: what to do instead (one line each)
NNUNET_FLAGS = {
    "-tr": "-tr picks an nnU-Net trainer class; segkit has none: training choices are flags "
           "(--recipe, --epochs, --time-budget, --augment; see docs/cli/train.md)",
    "-p": "-p picks an nnU-Net plans identifier; segkit keeps one plans.json per work dir and model folder: "
          "give --work-dir (train, plan, preprocess) or -m MODEL (predict)",
    "-pl": "-pl picks an nnU-Net planner class; segkit plans one way: choose the network with --network "
           "(e.g. resenc)",
    "-djfile": "-djfile is not needed: segkit evaluate takes class names from the reference dataset.json "
               "(--regions-from DATASET)",
    "-pfile": "-pfile is not needed: segkit evaluate takes class names from the reference dataset.json "
              "(--regions-from DATASET)",
}


def option_hint(token: str, known: list[str], elsewhere: dict[str, list[str]] | None = None) -> str:
    """What to say about an unknown option: nnU-Net's meaning, segkit's spelling, another command's, or the closest."""
    flag = token.split("=", 1)[0]
    if flag in NNUNET_FLAGS:
        return NNUNET_FLAGS[flag]
    spelled = "--" + flag.lstrip("-").replace("_", "-")
    if spelled in known:
        return f"unknown option {flag}: segkit spells it {spelled}"
    other = flag if flag in (elsewhere or {}) else spelled
    commands = (elsewhere or {}).get(other)
    if commands:
        return f"unknown option {flag}: {other} is an option of segkit {' / '.join(commands)}, not of this command"
    close = difflib.get_close_matches(flag.replace("_", "-"), [k for k in known if k.startswith("--")], n=1,
                                      cutoff=0.6)
    start = f"unrecognized arguments: {flag}" if flag.startswith("--") else f"unknown option {flag}"
    return start + (f" (did you mean {close[0]}?)" if close else "")


class StrictParser(argparse.ArgumentParser):
    """No abbreviated long options, and no multi-letter single-dash word read as a short flag plus value.

    nnU-Net habits: `-chk` must not become `-c hk`, `--save` must not become `--save-probabilities`.
    Words like `-chk` are refused unless a command registers them (as predict does for nnU-Net's flags).
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]  # passes argparse's own arguments through

    def parse_known_args(self, args=None, namespace=None):
        """In a leaf parser: refuse unknown options with this command's usage and a hint (see option_hint)."""
        if args is None or self._subparsers is not None:
            return super().parse_known_args(args, namespace)
        known = sorted(self._option_string_actions)
        elsewhere = getattr(self, "elsewhere", None)
        for token in args:
            if token == "--":
                break
            if (SINGLE_DASH_WORD.match(token) or token in NNUNET_FLAGS) and token not in self._option_string_actions:
                self.error(option_hint(token, known, elsewhere))
        parsed, extras = super().parse_known_args(args, namespace)
        extras = self._take_nnunet_positionals(parsed, extras)
        options = [e for e in extras if e.startswith("-")]
        if options:
            self.error(option_hint(options[0], known, elsewhere))
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras

    def _take_nnunet_positionals(self, parsed: argparse.Namespace, extras: list[str]) -> list[str]:
        """nnU-Net's positional habit (`train 1 3d_fullres 0`): fill the dests the command names, once each."""
        names = self.get_default("nnunet_positionals") or ()
        words = [e for e in extras if not e.startswith("-")]
        if not names or not words or len(words) > len(names) or len(words) != len(extras):
            return extras
        for name, value in zip(names, words):
            if getattr(parsed, name) != self.get_default(name):
                self.error(f"{name} given twice: {value!r} (positional, nnU-Net style) and "
                           f"{getattr(parsed, name)!r} (flag); give it once")
            setattr(parsed, name, value)
        return []


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every subcommand registered."""
    parser = StrictParser(prog="segkit", description="Self-configuring 3D medical image segmentation.")
    parser.add_argument("--version", action="version", version=f"segkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=StrictParser)
    for name in COMMAND_MODULES:
        importlib.import_module(f"segkit.cli.{name}").register(subparsers)
    commands = dict(subparsers.choices)
    elsewhere: dict[str, list[str]] = {}
    for command, sub in commands.items():
        for option in sub._option_string_actions:
            if (option.startswith("--") or SINGLE_DASH_WORD.match(option)) and option != "--help":
                elsewhere.setdefault(option, []).append(command)
    for sub in commands.values():
        sub.elsewhere = elsewhere   # type: ignore[attr-defined]  # read by StrictParser for its hints
    return parser


def entry() -> int:
    """The `segkit` command and `python -m segkit`: main() clocked from this process's start (time budgets)."""
    from segkit.console import process_started_at

    return main(None, started_at=process_started_at())


def main(argv: list[str] | None = None, started_at: float | None = None) -> int:
    """Run the CLI; user errors print one line and return exit code 2.

    started_at: when the command began (time.monotonic()); default now. `segkit train --time-budget`
    counts from it.
    """
    import time

    started = time.monotonic() if started_at is None else started_at
    parser = build_parser()
    args = parser.parse_args(argv)
    args.started_at = started
    logs.configure()   # text lines unless the command asks otherwise (--log-format json)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        if getattr(args, "resolve_dataset", False):
            from segkit.cli.datasets import resolve_dataset

            args.dataset = resolve_dataset(args.dataset, args.dataset_id)
        result = args.func(args)
    except UserError as err:
        if logs.json_mode():
            logs.error(str(err), event="user_error", exit_code=2, command=args.command)
        else:
            print(f"segkit {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("segkit: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)
