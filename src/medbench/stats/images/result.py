"""What every paired test on the test images returns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ImageTest:
    """A paired test of two models on the same test images; ``difference`` is metric(a) - metric(b)."""

    method: str
    difference: float
    p_value: float
    statistic: float | None = None
    ci_low: float | None = None  # 95% interval of the difference, when the method gives one
    ci_high: float | None = None
    n_images: int = 0
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
