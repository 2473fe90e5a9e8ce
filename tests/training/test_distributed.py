"""Two gloo processes on CPU: DDP steps with a split batch equal one process on the whole batch."""

from contextlib import nullcontext

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from training_data import TINY_ARCH

from segkit.networks import build_network
from segkit.training import distributed as dd
from segkit.training.losses import build_loss
from segkit.training.trainer import train_step

STEPS = 3
GLOBAL_BATCH = 4


def _batch():
    """A fixed global batch: data (4, 2, 8, 16, 16) and deep-supervision label targets."""
    rng = np.random.default_rng(0)
    data = torch.from_numpy(rng.standard_normal((GLOBAL_BATCH, 2, 8, 16, 16)).astype(np.float32))
    labels = torch.from_numpy(rng.integers(0, 3, (GLOBAL_BATCH, 1, 8, 16, 16)).astype(np.float32))
    return data, [labels, labels[:, :, :, ::2, ::2].contiguous()]


def _train(model, data, targets):
    """STEPS SGD steps exactly as the trainer makes them."""
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.99, weight_decay=3e-5, nesterov=True)
    loss_fn = build_loss("softmax", 3, batch_dice=False)
    for _ in range(STEPS):
        train_step(model, data, targets, loss_fn, optimizer, None, nullcontext, grad_clip=12.0)


def _model():
    torch.manual_seed(0)
    return build_network(TINY_ARCH, 2, 3)


def _worker(rank, world, init_file, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    info = dd.DistInfo(rank, world, rank)
    model = dd.wrap_model(_model(), info, torch.device("cpu"))
    data, targets = _batch()
    size = dd.per_rank_batch_size(GLOBAL_BATCH, info)
    part = slice(rank * size, (rank + 1) * size)
    _train(model, data[part], [t[part] for t in targets])
    torch.save(model.module.state_dict(), f"{out_dir}/rank{rank}.pt")
    dd.cleanup(info)


@pytest.mark.slow
def test_two_gloo_ranks_match_single_process_on_the_concatenated_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    single = _model()
    initial = {k: v.clone() for k, v in single.state_dict().items()}
    data, targets = _batch()
    torch.set_num_threads(1)
    _train(single, data, targets)
    moved = 0
    for key, expected in single.state_dict().items():
        assert torch.equal(rank0[key], rank1[key]), key
        torch.testing.assert_close(rank0[key], expected, rtol=1e-4, atol=1e-5)
        moved += int(not torch.equal(expected, initial[key]))
    assert moved > 10                                  # the steps really changed the weights


def test_global_batch_is_split_across_ranks():
    sizes = [dd.per_rank_batch_size(5, dd.DistInfo(r, 2, r)) for r in range(2)]
    assert sizes == [3, 2]


def test_nccl_with_one_gpu_per_local_rank_on_cuda_gloo_on_cpu():
    info = dd.info_from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (info.rank, info.world_size, info.local_rank, info.enabled, info.is_main) == (3, 4, 1, True, False)
    assert dd.backend_for("cuda") == "nccl" and dd.backend_for("cpu") == "gloo"
    assert dd.device_for("cuda", info) == torch.device("cuda", 1)
    assert dd.device_for("cpu", info) == torch.device("cpu")
    single = dd.info_from_env({})
    assert not single.enabled and dd.device_for("cuda", single) == torch.device("cuda", 0)
