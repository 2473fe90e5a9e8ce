"""Map a function over work items in worker processes with a tqdm progress bar."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

from tqdm import tqdm

Item = TypeVar("Item")
Result = TypeVar("Result")


def parallel_map(fn: Callable[[Item], Result], items: Iterable[Item], num_workers: int = 1,
                 desc: str = "", unit: str = "case") -> list[Result]:
    """Apply fn to every item (in order of items) using up to num_workers processes.

    fn must be a module-level function and items picklable. Workers should return
    errors as values rather than raise, so that one bad item does not hide the others;
    an exception that does escape a worker is re-raised here after pending work is cancelled.
    """
    items = list(items)
    results: list[Result | None] = [None] * len(items)
    with tqdm(total=len(items), desc=desc, unit=unit, disable=None, leave=False) as bar:
        if num_workers <= 1 or len(items) <= 1:
            for index, item in enumerate(items):
                results[index] = fn(item)
                bar.update()
            return results  # type: ignore[return-value]
        with ProcessPoolExecutor(max_workers=min(num_workers, len(items))) as pool:
            futures = {pool.submit(fn, item): index for index, item in enumerate(items)}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[futures[future]] = future.result()
                        bar.update()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
    return results  # type: ignore[return-value]
