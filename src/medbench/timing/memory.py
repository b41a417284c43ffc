"""Host memory of this process, now and at its peak; the GPU peak is framework-specific, so a callable."""

from __future__ import annotations

import sys
from collections.abc import Callable


def peak_rss_bytes() -> int | None:
    """The largest resident set size this process has had so far (not its children), in bytes.

    The peak cannot be reset: for a per-phase peak, run the phase in its own process (as medbench does for
    every framework run). None where the platform reports neither rusage nor a peak working set.
    """
    try:
        import resource
    except ImportError:  # Windows
        return _psutil_peak()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports kilobytes, macOS bytes.
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def _psutil_peak() -> int | None:
    import psutil

    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)  # Windows only
    return int(peak) if peak is not None else None


def current_rss_bytes() -> int:
    """The resident set size of this process now, in bytes."""
    import psutil  # imported here so that importing medbench.timing stays cheap

    return int(psutil.Process().memory_info().rss)


def memory_usage(gpu_peak: Callable[[], int | None] | None = None) -> dict[str, int | None]:
    """Host memory now and at its peak, plus the framework's GPU peak when ``gpu_peak`` is given.

    Args:
        gpu_peak: returns the peak device memory in bytes (e.g. ``torch.cuda.max_memory_allocated``), or
            None when there is no GPU. It is framework-specific, hence a callable.
    """
    return {
        "peak_rss_bytes": peak_rss_bytes(),
        "current_rss_bytes": current_rss_bytes(),
        "gpu_peak_bytes": gpu_peak() if gpu_peak is not None else None,
    }
