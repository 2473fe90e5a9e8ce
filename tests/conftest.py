"""Shared fixtures: small phantom datasets with anisotropic spacing and oblique directions."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from segkit.phantom import PhantomSpec, generate_dataset

TINY = PhantomSpec(shape=(16, 24, 24), spacing=(3.0, 1.5, 1.5))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: one thread avoids OpenMP spin-waits on a shared machine (restored afterwards)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-case, 4-channel nnU-Net-layout phantom (read-only: copy before mutating)."""
    return generate_dataset(tmp_path_factory.mktemp("tiny") / "Phantom", num_cases=4, spec=TINY)


@pytest.fixture(scope="session")
def lateral_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset, work dir) of a tiny model trained (100 steps) on the two-channel lateral phantom stored RAS,
    labels Left-Blob/Right-Blob (read-only: the orientation and DICOM node tests share it)."""
    from orientation_data import plan_and_preprocess_lateral, train_calibrated

    dataset, work = plan_and_preprocess_lateral(tmp_path_factory.mktemp("lateral"), ["RAS"])
    train_calibrated(dataset, work, "none")
    return dataset, work


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files holding a `slow` test first, the rest after, each group in collection order.

    scripts/test.sh hands whole files to two xdist workers in this order (--dist loadfile
    --no-loadscope-reorder): the long end-to-end files start at once, and the short ones fill the
    workers' ends, instead of a long file starting last while the other worker sits idle.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what collection imported (torch, numpy, segkit: ~200,000 objects) out of the garbage collector.

    They live for the whole run anyway; without this every full collection, automatic or oom.release's
    gc.collect(), walks them all (~0.3 s each in a test worker), and the objects tests create are collected as before.
    """
    gc.collect()
    gc.freeze()
