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
        steps_per_epoch: kept for callers; the milestones are placed in steps, not epochs (see
            :meth:`milestone_steps`).
    """

    base_lr: float
    total_steps: int
    kind: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)
    gamma: float = 0.1
    warmup_steps: int = 0
    min_lr: float = 0.0
    steps_per_epoch: int = 1

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            lr = self.base_lr
            for milestone in self.milestone_steps():
                if step >= milestone:
                    lr *= self.gamma  # one multiply per milestone, as MultiStepLR: 1e-3 * 0.1 * 0.1 == 1e-5
            return lr
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * progress))

    def milestone_steps(self) -> tuple[int, ...]:
        """The first step at each milestone's rate: the fraction of the run's steps, rounded up.

        For the official 100 epochs the 50% and 75% milestones are the first steps of epochs 50 and 75
        (0-based), exactly where the baseline's per-epoch ``MultiStepLR`` changes the rate. Counting steps rather
        than epochs gives a short run the same shares of each rate: rounded to epochs, one epoch would train
        at ``base_lr x gamma^2`` throughout and two would jump straight past the middle rate.
        """
        # round() first: 0.7 * 10 is 7.000000000000001 in binary, whose ceiling would be one step late
        return tuple(math.ceil(round(m * self.total_steps, 9)) for m in self.milestones)
