"""Inference backends: what computes a tile batch's logits. Everything around it is the one pipeline.

`torch` runs the nn.Module; `onnxruntime` and `openvino` run the fold's exported ONNX network
(segkit.models.onnx: from an ONNX package, or exported in memory from the checkpoint when a
torch model folder is asked to run on them). The ONNX backends are wrapped as nn.Modules taking
and returning float32 torch tensors, so the sliding window, mirroring TTA, fold averaging,
revert and post-processing are the same code for every backend: only the network call differs.
They run on the CPU with torch's thread count (OMP_NUM_THREADS / --threads), so a comparison
between backends uses the same cores.

Precision: onnxruntime runs fp32 (its CPU kernels have no bf16 convolutions); OpenVINO's
`INFERENCE_PRECISION_HINT` follows --precision (auto: torch's rule for this CPU, see acceleration.py).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import torch
from torch import nn

from segkit.errors import UserError
from segkit.inference.acceleration import resolve_precision
from segkit.models.onnx import INPUT_NAME, OUTPUT_NAME

BACKENDS = ("torch", "onnxruntime", "openvino")
BACKEND_CHOICES = ("auto", *BACKENDS)
ONNX_BACKENDS = ("onnxruntime", "openvino")
EXTRA = {"onnxruntime": "onnx", "openvino": "openvino"}
OPENVINO_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


def backend_available(name: str) -> bool:
    """Whether a backend's library is importable (torch always is)."""
    return name == "torch" or importlib.util.find_spec(name) is not None


def check_backend(name: str) -> None:
    """UserError for an unknown backend or one whose library is not installed."""
    if name not in BACKEND_CHOICES:
        raise UserError(f"unknown backend {name!r}; use {', '.join(BACKEND_CHOICES)}")
    if name != "auto" and not backend_available(name):
        raise UserError(f"--backend {name} needs its extra: pip install 'segkit-revmb[{EXTRA[name]}]'")


def backend_precision(backend: str, precision: str) -> str:
    """The arithmetic an ONNX backend runs in for a --precision request; UserError where it cannot."""
    if backend == "onnxruntime":
        if precision not in ("auto", "fp32"):
            raise UserError(f"--backend onnxruntime runs fp32 only, not --precision {precision}")
        return "fp32"
    if precision == "auto":     # the torch backend's rule on this CPU (bf16 only where measured harmless)
        return resolve_precision("auto", torch.device("cpu"))
    return precision


def _threads() -> int:
    """The thread count torch uses here (the backends get the same cores)."""
    return max(1, torch.get_num_threads())


class OnnxRuntimeNetwork(nn.Module):
    """An ONNX network run by ONNX Runtime's CPU provider, called like the torch network."""

    def __init__(self, onnx_bytes: bytes):
        """Create the session (fp32, torch's thread count, one inter-op thread)."""
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = _threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3     # warnings about unused initialisers are noise to users
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """float32 logits of a float32 batch."""
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        return torch.from_numpy(self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0])


class OpenVinoNetwork(nn.Module):
    """An ONNX network compiled by OpenVINO for the CPU, called like the torch network."""

    def __init__(self, onnx_bytes: bytes, precision: str):
        """Read and compile (dynamic shapes; the precision hint from segkit's precision name)."""
        super().__init__()
        import openvino as ov

        core = ov.Core()
        model = core.read_model(onnx_bytes, b"")
        config = {"INFERENCE_PRECISION_HINT": OPENVINO_PRECISION[precision], "INFERENCE_NUM_THREADS": _threads()}
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """float32 logits of a float32 batch."""
        array = np.ascontiguousarray(batch.detach().to("cpu", torch.float32).numpy())
        result = self.request.infer({0: array})
        return torch.from_numpy(np.array(result[self.compiled.output(0)], dtype=np.float32))


def onnx_runner(backend: str, onnx_bytes: bytes, precision: str) -> nn.Module:
    """The callable network of one fold's ONNX bytes on an ONNX backend."""
    if backend == "onnxruntime":
        return OnnxRuntimeNetwork(onnx_bytes)
    if backend == "openvino":
        return OpenVinoNetwork(onnx_bytes, precision)
    raise ValueError(f"{backend!r} is not an ONNX backend")
