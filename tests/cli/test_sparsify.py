"""`segkit sparsify DATASET OUT` / `-d ID OUT`: the dataset argument as every other command takes it."""

from __future__ import annotations

import shutil

from segkit.cli import main
from segkit.io.dataset import load_dataset


def test_sparsify_takes_a_dataset_id_like_every_other_command(tiny_dataset, tmp_path, monkeypatch, capsys):
    """#24 item 11: `segkit sparsify -d 7 OUT`."""
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copytree(tiny_dataset, raw / "Dataset007_Phantom")
    monkeypatch.setenv("nnUNet_raw", str(raw))
    monkeypatch.delenv("SEGKIT_RAW", raising=False)
    out = tmp_path / "Dataset008_Sparse"
    assert main(["sparsify", "-d", "7", str(out), "--slices", "4"]) == 0
    assert load_dataset(out).ignore_label is not None
    capsys.readouterr()
    assert main(["sparsify", "-d", "7", str(out), str(tmp_path / "x"), "--slices", "4"]) == 2
    assert "give only OUT" in capsys.readouterr().err
