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


def multistep_lr(base_lr: float, epochs: int, epoch: int, gamma: float = 0.1) -> float:
    """The official script's rate in ``epoch``: ``MultiStepLR(milestones=[0.5 * E, 0.75 * E])`` stepped once
    per epoch, which multiplies the group's rate by gamma on reaching each milestone."""
    lr = base_lr
    for milestone in (0.5 * epochs, 0.75 * epochs):
        if epoch >= milestone:
            lr *= gamma
    return lr


def test_the_official_100_epochs_equal_multisteplr_exactly():
    steps_per_epoch = 7
    s = Schedule(base_lr=1e-3, total_steps=100 * steps_per_epoch, steps_per_epoch=steps_per_epoch)
    assert s.milestone_steps() == (50 * steps_per_epoch, 75 * steps_per_epoch)
    for step in range(100 * steps_per_epoch):
        assert s(step) == multistep_lr(1e-3, 100, step // steps_per_epoch), step  # bit for bit


@pytest.mark.parametrize("epochs", [1, 2, 3])
def test_short_runs_get_each_rate_for_its_share_of_the_steps(epochs):
    """Milestones in steps: one epoch is not all at 1e-5, two do not jump from 1e-3 to 1e-5."""
    steps_per_epoch = 8
    total = epochs * steps_per_epoch
    s = Schedule(base_lr=1e-3, total_steps=total, steps_per_epoch=steps_per_epoch)
    rates = [s(i) for i in range(total)]
    assert rates[: total // 2] == [1e-3] * (total // 2)
    assert rates.count(pytest.approx(1e-4)) == math.ceil(0.75 * total) - total // 2
    assert rates[math.ceil(0.75 * total) :] == [pytest.approx(1e-5)] * (total - math.ceil(0.75 * total))


def test_milestones_are_rounded_up_to_a_step_without_binary_noise():
    # 0.7 * 10 is 7.000000000000001 in floating point: the decay still starts at step 7, not 8
    s = Schedule(base_lr=1.0, total_steps=10, milestones=(0.7,), gamma=0.5)
    assert s.milestone_steps() == (7,)
    assert [s(i) for i in (6, 7)] == [1.0, 0.5]
    assert Schedule(base_lr=1.0, total_steps=5, milestones=(0.5,)).milestone_steps() == (3,)
