"""Options several subcommands share, defined once: --network, --device, --precision, --checkpoint.

Their choices come from the modules that own them (the network registry, inference's precisions
and checkpoint kinds). Those import torch, and building the parser must not (`segkit --help`,
`segkit verify` stay fast), so the choices are read when argparse first checks or prints them.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator

DEVICE_HELP = "auto (CUDA if available), cpu or cuda[:n]"


class OwnedChoices:
    """argparse choices held by another module (`module.attribute`, a tuple or a function returning one).

    Read on every membership test or listing, so a family registered after the parser was built
    is still accepted.
    """

    def __init__(self, module: str, attribute: str, extra: tuple[str, ...] = ()):
        self.module = module
        self.attribute = attribute
        self.extra = extra

    def values(self) -> tuple[str, ...]:
        """The current choices: the extra ones first, then the owner's."""
        owned = getattr(importlib.import_module(self.module), self.attribute)
        return (*self.extra, *(owned() if callable(owned) else owned))

    def __iter__(self) -> Iterator[str]:
        return iter(self.values())

    def __contains__(self, value: object) -> bool:
        return value in self.values()


def network_choices(auto: bool = True) -> OwnedChoices:
    """The registered network families (segkit.networks.registry), optionally with 'auto' first."""
    return OwnedChoices("segkit.networks.registry", "family_names", ("auto",) if auto else ())


def add_network_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--network FAMILY: 'auto' or a registered family; help_text says what auto means."""
    parser.add_argument("--network", choices=network_choices(), default="auto", metavar="FAMILY",
                        help=f"network family: %(choices)s; {help_text}")


def add_device_option(parser: argparse.ArgumentParser, default: str = "auto", help_text: str = DEVICE_HELP) -> None:
    """--device (auto, cpu, cuda[:n])."""
    parser.add_argument("--device", default=default, help=help_text)


def add_precision_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """--precision (segkit.inference.acceleration.PRECISIONS: auto, fp32, bf16, fp16); help_text explains auto."""
    parser.add_argument("--precision", choices=OwnedChoices("segkit.inference.acceleration", "PRECISIONS"),
                        default="auto", metavar="PRECISION", help=f"%(choices)s: {help_text}")


def add_checkpoint_option(parser: argparse.ArgumentParser, help_text: str = "which checkpoint of each fold") -> None:
    """--checkpoint (final, best, latest: segkit.models.folder.CHECKPOINT_KINDS)."""
    parser.add_argument("--checkpoint", choices=OwnedChoices("segkit.models.folder", "CHECKPOINT_KINDS"),
                        default="final", metavar="KIND", help=f"{help_text}: %(choices)s (default: %(default)s)")


def add_log_format_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """--log-format text|json (segkit.logs): JSON lines on stderr for log collectors."""
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="stderr lines: text (default) or json (one JSON object per line, for log collectors; "
                             "no progress bar)")
