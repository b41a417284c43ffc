"""What every timer here is given: a ``sync`` that drains queued device work, and a clock to read after it.

Each framework passes its own sync (e.g. ``Framework.synchronize``); it runs before *every* clock read, so
work queued asynchronously is billed to the call that queued it, not to the next measurement.
"""

from __future__ import annotations

from collections.abc import Callable

Sync = Callable[[], None]
Clock = Callable[[], float]


def no_sync() -> None:
    """The sync of code that queues no device work (CPU-only numpy, or before a framework is imported)."""
