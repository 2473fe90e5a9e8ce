"""`segkit import-nnunet`: nnU-Net's spellings of its arguments."""

from __future__ import annotations

from pathlib import Path

from segkit.cli import build_parser


def test_import_nnunet_accepts_chk(tmp_path: Path) -> None:
    args = build_parser().parse_args(["import-nnunet", "A", "B", "-chk", "best"])
    assert args.checkpoint == "best"
    args = build_parser().parse_args(["import-nnunet", "A", "B", "-chk", "checkpoint_latest.pth"])
    assert args.checkpoint == "latest"
