"""Recognising out-of-memory errors (CUDA, CPU allocator) among other runtime errors."""


import torch

from segkit.oom import is_out_of_memory


def test_oom_errors_are_recognised():
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))
