"""Options shared by several subcommands (segkit/cli/options.py): same choices everywhere, read from their owners."""

from __future__ import annotations

import subprocess
import sys

import pytest

from segkit.cli import build_parser
from segkit.inference.acceleration import PRECISIONS
from segkit.models.folder import CHECKPOINT_KINDS
from segkit.networks.registry import family_names


def parse(*argv: str):
    """Parsed arguments of one command line."""
    return build_parser().parse_args(list(argv))


def test_network_choices_are_auto_and_the_registered_families() -> None:
    """plan and demo accept every registered family and default to auto."""
    for family in family_names():
        assert parse("plan", "DS", "--network", family).network == family
        assert parse("demo", "--network", family).network == family
    assert parse("plan", "DS").network == parse("demo").network == "auto"


def test_device_precision_and_checkpoint_are_shared() -> None:
    """--device (train, find-best, bench-memory), --precision (train), --checkpoint (find-best, export-model)."""
    assert parse("train", "DS").device == parse("find-best", "W", "--configs", "c").device == "auto"
    assert parse("bench-memory", "plans.json").device == "cpu"
    assert parse("train", "DS", "--device", "cuda:1").device == "cuda:1"
    for precision in PRECISIONS:
        assert parse("train", "DS", "--precision", precision).precision == precision
    for kind in CHECKPOINT_KINDS:
        assert parse("find-best", "W", "--configs", "c", "--checkpoint", kind).checkpoint == kind
        assert parse("export-model", "M", "-o", "m.zip", "--checkpoint", kind).checkpoint == kind
    assert parse("export-model", "M", "-o", "m.zip").checkpoint == "final"


@pytest.mark.parametrize("argv", [["train", "DS", "--precision", "fp8"],
                                  ["export-model", "M", "-o", "m.zip", "--checkpoint", "first"],
                                  ["bench-memory", "p.json", "--modes", "sideways"],
                                  ["plan", "DS", "--network", "vnet"]])
def test_bad_choice_exits_2_naming_the_choices(argv: list[str], capsys) -> None:
    """An unknown value is an argparse error (exit 2) that lists the valid ones."""
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_help_lists_the_owned_choices(capsys) -> None:
    """--help shows the choices read from their owners."""
    with pytest.raises(SystemExit):
        parse("train", "--help")
    out = capsys.readouterr().out
    assert ", ".join(PRECISIONS) in out


@pytest.mark.slow
def test_building_the_parser_imports_no_torch() -> None:
    """`segkit --help` and light commands stay fast: building every subcommand's parser does not import torch."""
    code = ("import sys; from segkit.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
