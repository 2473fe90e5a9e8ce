"""Reading nnU-Net v2 checkpoints (`fold_<k>/checkpoint_*.pth`) without executing code.

They are plain `torch.save` dicts whose only non-tensor globals are numpy scalars and dtypes (the
training log); they are read by `segkit.models.checkpoint.load_weights_only` (weights-only unpickling,
the one place segkit deserialises a checkpoint) with exactly those allowlisted, and a one-line refusal naming anything else.
"""

from __future__ import annotations

from pathlib import Path

from segkit.errors import UserError
from segkit.models.checkpoint import load_weights_only


def checkpoint_allowlist() -> list:
    """The globals nnU-Net v2 checkpoints need besides tensors and builtins: numpy scalars and dtypes.

    The training log and `_best_ema` hold numpy float64 scalars, pickled as
    `numpy.core.multiarray.scalar(dtype, bytes)` (`numpy._core` under numpy 2).
    """
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import scalar  # type: ignore[no-redef]  # the same object, numpy 1.x location
    allowed: list = [np.dtype, scalar, (scalar, "numpy.core.multiarray.scalar"),
                     (scalar, "numpy._core.multiarray.scalar")]
    dtypes = getattr(np, "dtypes", None)
    for name in ("Float64DType", "Float32DType", "Float16DType", "Int64DType", "Int32DType", "BoolDType"):
        if dtypes is not None and hasattr(dtypes, name):
            allowed.append(getattr(dtypes, name))
    return allowed


def _allowlisted_names(allowed: list) -> set[str]:
    """Qualified names of the allowlist's entries."""
    names = set()
    for item in allowed:
        if isinstance(item, tuple):
            names.add(item[1])
        else:
            names.add(f"{item.__module__}.{item.__qualname__}")
    return names


def read_nnunet_checkpoint(path: str | Path) -> dict:
    """An nnU-Net v2 checkpoint dict loaded with weights_only=True and the numpy allowlist; UserError otherwise."""
    import torch

    path = Path(path)
    serialization = torch.serialization
    if not hasattr(serialization, "safe_globals"):
        raise UserError(f"reading nnU-Net checkpoints safely needs torch >= 2.5 (found {torch.__version__})", path)
    allowed = checkpoint_allowlist()
    try:
        checkpoint = load_weights_only(path, safe_globals=allowed)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, ... for refused or corrupt files
        outside = _globals_outside_allowlist(path, allowed)
        if outside:
            raise UserError(f"checkpoint holds objects outside segkit's allowlist ({', '.join(outside[:3])}); "
                            "refused because loading them would run code", path) from None
        raise UserError(f"cannot load nnU-Net checkpoint ({str(err).splitlines()[0][:160]})", path) from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("network_weights"), dict):
        raise UserError("not an nnU-Net v2 checkpoint (no 'network_weights' state dict)", path)
    return checkpoint


def _globals_outside_allowlist(path: Path, allowed: list) -> list[str]:
    """Names of the pickled globals a checkpoint needs beyond torch's defaults and the allowlist."""
    import torch

    finder = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    if finder is None:
        return []
    try:
        names = finder(path)
    except Exception:  # not a zip checkpoint at all: reported as unreadable by the caller
        return []
    known = _allowlisted_names(allowed)
    return [name for name in names if name not in known]
