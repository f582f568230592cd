"""Run independent simulations side by side on local processes.

``parallel_map(fn, items)`` is ``[fn(item) for item in items]``, computed by a
pool of worker processes (one per core by default), in input order, with a
progress bar on a terminal and none in logs. ``fn`` must be a module-level
function so it can be sent to the workers.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def parallel_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "",
) -> list[R]:
    """``[fn(x) for x in items]`` on ``workers`` processes (1 = in this process).

    ``progress``: True shows a bar, False hides it, None shows it only when
    standard error is a terminal.
    """
    from tqdm import tqdm

    items = list(items)
    workers = default_workers() if workers is None else workers
    workers = max(1, min(workers, len(items)))
    bar = tqdm(total=len(items), desc=desc, disable=None if progress is None else not progress, leave=False)
    try:
        if workers == 1:
            results = []
            for item in items:
                results.append(fn(item))
                bar.update()
            return results
        context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(fn, item) for item in items]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            return [future.result() for future in futures]
    finally:
        bar.close()
