"""`segkit find-best`: nnU-Net's spellings, as the deployment guide prints them."""

from __future__ import annotations

from pathlib import Path

from segkit.cli import build_parser


def test_find_best_takes_nnunets_dash_c_as_in_the_deployment_guide():
    """#24 item 8: docs/deployment.md printed `find-best WORK -c ...`; nnU-Net spells it -c, segkit --configs."""
    assert build_parser().parse_args(["find-best", "W", "-c", "2d", "3d_fullres"]).configs == ["2d", "3d_fullres"]
    text = (Path(__file__).resolve().parents[2] / "docs" / "faq.md").read_text()
    assert "--batch" not in text, "the FAQ still recommends --batch, which does nothing"
