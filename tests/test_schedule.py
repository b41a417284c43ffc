"""The shared learning-rate schedules: the official baseline's step decay, cosine and warm-up."""

import math

import pytest

from medbench.schedule import Schedule


def test_official_step_schedule_decays_at_half_and_three_quarters_of_the_epochs():
    steps_per_epoch = 10
    s = Schedule(base_lr=1e-3, total_steps=100 * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    assert s(0) == pytest.approx(1e-3)
    assert s(49 * steps_per_epoch + 9) == pytest.approx(1e-3)  # last step of epoch 49
    assert s(50 * steps_per_epoch) == pytest.approx(1e-4)
    assert s(74 * steps_per_epoch) == pytest.approx(1e-4)
    assert s(75 * steps_per_epoch) == pytest.approx(1e-5)
    assert s(100 * steps_per_epoch - 1) == pytest.approx(1e-5)


def test_cosine_runs_from_base_to_min():
    s = Schedule(base_lr=0.1, total_steps=100, kind="cosine", min_lr=0.001)
    assert s(0) == pytest.approx(0.1)
    assert s(50) == pytest.approx(0.001 + 0.5 * 0.099 * (1 + math.cos(math.pi * 0.5)))
    assert s(100) == pytest.approx(0.001)


def test_warmup_is_linear_then_hands_over():
    s = Schedule(base_lr=1.0, total_steps=20, kind="constant", warmup_steps=4)
    assert [s(i) for i in range(6)] == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])
