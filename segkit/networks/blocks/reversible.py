"""Reversible coupling: a stage of blocks as ONE autograd function that keeps only its output.

Each block maps channel halves (x1, x2) to y1 = x1 + F(x2), y2 = x2 + G(y1). Backward walks
the blocks in reverse, recomputes G(y1) and F(x2) with grad enabled, reconstructs
x2 = y2 - G(y1), x1 = y1 - F(x2), and backpropagates through the recomputed graphs.

- The block parameters are explicit inputs of the function, so they get gradients even when
  the stage input does not require grad, and autograd's AccumulateGrad (which DDP hooks)
  receives them as for any other layer.
- CPU and CUDA random state are saved before each F and G call and restored for the
  recompute, so stochastic layers see the same numbers twice.
- Under autocast F and G may run in bf16/fp16, but the two residual streams stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

MODES = ("reversible", "plain", "checkpoint")


# Streams and branch outputs are rounded to multiples of 2**-GRID_BITS: additions of such
# numbers below 2**(24 - GRID_BITS) in magnitude are exact in float32, so y1 - F(x2) gives back
# x1 bit for bit and reversible gradients equal plain ones. None = ordinary float coupling.
GRID_BITS = 16


def to_grid(t: torch.Tensor, bits: int | None, inplace: bool = False) -> torch.Tensor:
    """Round to multiples of 2**-bits (no-op when bits is None) in two passes.

    Adding then subtracting 1.5 * 2**(mantissa - bits) makes the FPU round at that grid
    (coarser, still on-grid, where |t| exceeds a quarter of the magic number).
    """
    if bits is None:
        return t
    mantissa_bits = round(-math.log2(torch.finfo(t.dtype).eps))
    magic = 1.5 * 2.0 ** (mantissa_bits - bits)
    return (t.add_(magic) if inplace else t + magic).sub_(magic)


class _GridRound(torch.autograd.Function):
    """to_grid with a straight-through (identity) gradient; saves nothing."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, bits: int) -> torch.Tensor:
        return to_grid(t, bits)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def grid_round(t: torch.Tensor, bits: int | None) -> torch.Tensor:
    """Differentiable to_grid (straight-through)."""
    return t if bits is None else _GridRound.apply(t, bits)


class CouplingBlock(nn.Module):
    """Additive coupling of two branches on channel halves: y1 = x1 + F(x2), y2 = x2 + G(y1)."""

    def __init__(self, f: nn.Module, g: nn.Module, grid_bits: int | None = GRID_BITS):
        super().__init__()
        self.f = f
        self.g = g
        self.grid_bits = grid_bits

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Plain autograd coupling; branch outputs join the streams in the streams' dtype."""
        y1 = x1 + grid_round(self.f(x2).to(x1.dtype), self.grid_bits)
        return y1, x2 + grid_round(self.g(y1).to(x2.dtype), self.grid_bits)


class _RngState:
    """CPU (and CUDA, when the tensors live there) random state captured before a branch."""

    def __init__(self, device: torch.device):
        self.device = device
        self.cpu_state = torch.get_rng_state()
        self.cuda_state = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    @contextmanager
    def restored(self) -> Iterator[None]:
        """Replay this state inside the block; the caller's RNG is untouched afterwards."""
        devices = [self.device] if self.cuda_state is not None else []
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            torch.set_rng_state(self.cpu_state)
            if self.cuda_state is not None:
                torch.cuda.set_rng_state(self.cuda_state, self.device)
            yield


def stream_dtype(dtype: torch.dtype) -> torch.dtype:
    """Residual streams are at least float32 (bf16/fp16 inputs are promoted; float64 stays)."""
    return torch.promote_types(dtype, torch.float32)


def _autocast_context(device_type: str, enabled: bool, dtype: torch.dtype | None):
    """Re-enter the forward's autocast state during the backward recompute."""
    if not enabled:
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=dtype)


def _couplings(blocks: nn.ModuleList) -> list[CouplingBlock]:
    """The blocks with their type (ModuleList items are typed as plain Modules)."""
    return cast("list[CouplingBlock]", list(blocks))


class ReversibleStageFunction(torch.autograd.Function):
    """Forward without a graph, keep the output; backward reconstructs and recomputes block by block."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, blocks: nn.ModuleList, *params: torch.Tensor):
        device_type = x.device.type
        ctx.autocast = (torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type))
        ctx.device_type, ctx.input_dtype = device_type, x.dtype
        ctx.blocks = blocks
        ctx.rng = []
        couplings = _couplings(blocks)
        x1, x2 = (to_grid(half.to(stream_dtype(x.dtype)), couplings[0].grid_bits) for half in x.chunk(2, dim=1))
        with torch.no_grad():
            for block in couplings:
                rng_f = _RngState(x.device)
                x1 = x1 + to_grid(block.f(x2).to(x1.dtype), block.grid_bits, inplace=True)
                rng_g = _RngState(x.device)
                x2 = x2 + to_grid(block.g(x1).to(x2.dtype), block.grid_bits, inplace=True)
                ctx.rng.append((rng_f, rng_g))
            out = torch.cat([x1, x2], dim=1)
            del x1, x2
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (out,) = ctx.saved_tensors
        y1, y2 = out.chunk(2, dim=1)
        dy1, dy2 = grad_out.chunk(2, dim=1)
        param_grads: list[list[torch.Tensor | None]] = []
        autocast = _autocast_context(ctx.device_type, *ctx.autocast)
        for block, (rng_f, rng_g) in zip(reversed(ctx.blocks), reversed(ctx.rng)):
            g_params = list(block.g.parameters())
            f_params = list(block.f.parameters())
            with torch.enable_grad(), autocast, rng_g.restored():
                y1_leaf = y1.detach().requires_grad_()
                g_out = block.g(y1_leaf)
            grads = torch.autograd.grad(g_out, [y1_leaf, *g_params], dy2.to(g_out.dtype), allow_unused=True)
            with torch.no_grad():
                x2 = y2 - to_grid(g_out.to(y2.dtype), block.grid_bits)
                dy1 = dy1 + grads[0].to(dy1.dtype)
            g_grads = list(grads[1:])
            del g_out, y1_leaf, grads
            with torch.enable_grad(), autocast, rng_f.restored():
                x2_leaf = x2.detach().requires_grad_()
                f_out = block.f(x2_leaf)
            grads = torch.autograd.grad(f_out, [x2_leaf, *f_params], dy1.to(f_out.dtype), allow_unused=True)
            with torch.no_grad():
                y1 = y1 - to_grid(f_out.to(y1.dtype), block.grid_bits)
                dy2 = dy2 + grads[0].to(dy2.dtype)
            param_grads.append([*grads[1:], *g_grads])
            y2 = x2
            del f_out, x2_leaf, grads
        grad_in = torch.cat([dy1, dy2], dim=1).to(ctx.input_dtype)
        flat = [g for block_grads in reversed(param_grads) for g in block_grads]
        return (grad_in, None, *flat)


class ReversibleSequence(nn.Module):
    """Coupling blocks at one resolution, run reversibly, with plain autograd, or checkpointed per block."""

    def __init__(self, blocks: list[CouplingBlock], mode: str = "reversible"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose from {MODES}")
        self.blocks = nn.ModuleList(blocks)
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the blocks on x's channel halves; returns the concatenated streams."""
        if len(self.blocks) == 0:
            return x
        if self.mode == "reversible" and torch.is_grad_enabled():
            params = [p for block in _couplings(self.blocks) for p in (*block.f.parameters(), *block.g.parameters())]
            return ReversibleStageFunction.apply(x, self.blocks, *params)
        bits = _couplings(self.blocks)[0].grid_bits
        x1, x2 = (grid_round(half.to(stream_dtype(x.dtype)), bits) for half in x.chunk(2, dim=1))
        for block in self.blocks:
            if self.mode == "checkpoint" and torch.is_grad_enabled():
                x1, x2 = checkpoint(block, x1, x2, use_reentrant=False)
            else:
                x1, x2 = block(x1, x2)
        return torch.cat([x1, x2], dim=1)

