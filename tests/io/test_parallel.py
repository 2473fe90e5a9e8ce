"""parallel_map: results in the order of the items, in one process or several; a worker's exception is re-raised."""

from __future__ import annotations

import pytest

from segkit.io.parallel import parallel_map


@pytest.mark.parametrize("workers", [1, 2])
def test_results_keep_the_items_order(workers: int) -> None:
    assert parallel_map(abs, [3, -1, -4, 1, -5], num_workers=workers) == [3, 1, 4, 1, 5]
    assert parallel_map(abs, [], num_workers=workers) == []


@pytest.mark.parametrize("workers", [1, 2])
def test_an_exception_escaping_a_worker_is_raised_here(workers: int) -> None:
    with pytest.raises(ValueError, match="invalid literal"):
        parallel_map(int, ["1", "x", "3"], num_workers=workers)
