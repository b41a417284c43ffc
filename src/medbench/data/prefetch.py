"""Calls computed ahead in background threads, handed out in order: how the pipeline prefetches batches."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
THREAD_PREFIX = "medbench-batch"  # names the threads: seen in stack dumps, and how tests find leftovers


def prefetched(make: Callable[[int], T], n: int, *, depth: int = 2, workers: int = 1) -> Iterator[T]:
    """Yields ``make(0) ... make(n - 1)`` in order, computing up to ``depth`` of them ahead in threads.

    Threads are enough: numpy releases the GIL in its copies, gathers and arithmetic, which is where batch
    building spends its time, so they overlap with the consumer (whose framework also releases the GIL).
    ``depth`` bounds the memory held in finished batches. When the consumer stops early, the generator's
    ``finally`` cancels what has not started and waits for at most ``workers`` batches in progress, so no
    thread outlives the iteration. An exception in ``make`` is raised in the consumer.
    """
    if n <= 0:
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX) as pool:
        pending: deque[Future[T]] = deque()
        submitted = 0
        try:
            while submitted < min(depth, n):
                pending.append(pool.submit(make, submitted))
                submitted += 1
            while pending:
                item = pending.popleft().result()
                if submitted < n:
                    pending.append(pool.submit(make, submitted))
                    submitted += 1
                yield item
        finally:
            for future in pending:
                future.cancel()
            # leaving the `with` joins the threads (shutdown(wait=True))
