"""docs/onnx.md's plain-onnxruntime example runs as written and gives segkit's logits."""

from __future__ import annotations

import importlib.util
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from inference_fixtures import make_model_dir

from segkit.cli import main
from segkit.inference.model import load_model
from segkit.preprocessing.pipeline import preprocess_images

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                                or importlib.util.find_spec("onnx") is None,
                                reason="onnx / onnxruntime not installed (pip install 'segkit-revmb[onnx]')")
DOC = Path(__file__).resolve().parents[2] / "docs" / "onnx.md"
MARKER = "<!-- example: plain-onnxruntime"


def example_code() -> str:
    """The python block right after the example marker."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(re.escape(MARKER) + r".*?-->\s*```python\n(.*?)```", text, re.S)
    assert match, f"{DOC} lost its plain-onnxruntime example"
    return match.group(1)


def test_plain_onnxruntime_example_matches_segkit_logits(tmp_path, monkeypatch) -> None:
    """Export a package, preprocess a volume with segkit, run the doc's code on it; compare with torch's logits."""
    torch.manual_seed(0)
    model_dir = make_model_dir(tmp_path / "work", num_channels=2)
    assert main(["export-model", str(model_dir), "-o", str(tmp_path / "model_onnx.zip"), "--format", "onnx"]) == 0
    loaded = load_model(model_dir, device="cpu")
    raw = np.random.default_rng(0).normal(5.0, 2.0, size=(2, 14, 37, 30)).astype(np.float32)
    image, _ = preprocess_images(raw, (2.5, 1.0, 1.0), loaded.plans, "3d_fullres")
    np.save(tmp_path / "case_preprocessed.npy", image)
    monkeypatch.chdir(tmp_path)
    namespace = runpy.run_path(str(_write(tmp_path / "example.py", example_code())))
    logits, labels = namespace["logits"], namespace["labels"]
    # segkit's logits: its torch network on the same preprocessed volume, padded the same way
    strides = loaded.entry.architecture.total_strides
    pad = [(0, 0)] + [(0, -n % s) for n, s in zip(image.shape[1:], strides)]
    with torch.no_grad():
        expected = loaded.network(torch.from_numpy(np.pad(image, pad))[None])[0].numpy()
    expected = expected[(slice(None),) + tuple(slice(0, n) for n in image.shape[1:])]
    assert logits.shape == expected.shape == (4, *image.shape[1:])
    print(f"largest logit difference {np.abs(logits - expected).max():.2e}")
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert (labels == expected.argmax(0)).mean() >= 0.9999


def _write(path: Path, text: str) -> Path:
    """Write text to path and return it."""
    path.write_text(text, encoding="utf-8")
    return path
