"""Learning-rate schedules as plain functions of the step, computed once outside every framework.

Each trainer receives the learning rate for every step from here, so the three frameworks follow the same
schedule to the last digit instead of three libraries' ideas of "step decay" or "cosine".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Schedule:
    """Learning rate at a global step.

    Args:
        base_lr: the peak learning rate.
        total_steps: steps in the whole run (epochs x batches per epoch).
        kind: ``step`` multiplies by ``gamma`` at each milestone (fractions of the run, as the MedMNIST baseline's
            x0.1 at 50% and 75%), ``cosine`` decays to ``min_lr``, ``constant`` keeps ``base_lr``.
        warmup_steps: linear warm-up from ``base_lr / warmup_steps`` before the schedule proper.
    """

    base_lr: float
    total_steps: int
    kind: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_steps: int = 0
    min_lr: float = 0.0
    steps_per_epoch: int = 1  # milestones fall on epoch boundaries, as in the official baseline

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            # The baseline steps its scheduler once per epoch, so milestones are epochs, not raw steps.
            epochs = max(1, round(self.total_steps / self.steps_per_epoch))
            epoch = step // self.steps_per_epoch
            passed = sum(epoch >= int(m * epochs) for m in self.milestones)
            return self.base_lr * self.gamma**passed
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))
