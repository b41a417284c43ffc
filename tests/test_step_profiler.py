"""The loop's step profiler (``medbench.training.profiling``) with a stand-in framework: when it measures,
what it records, and that a failing profiler costs the run nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medbench.training.profiling import PROFILE_FILE, StepProfiler


class FakeFramework:
    name = "fake"

    def __init__(self, *, fail: bool = False):
        self.fail, self.calls = fail, []

    def step_breakdown(self, trainer, images, labels, **options):
        self.calls.append(("breakdown", options))
        if self.fail:
            raise RuntimeError("no clock here")
        return {"step_ms": 10.0, "forward_ms": 4.0, "method": "fake"}

    def top_operations(self, trainer, images, labels, **options):
        self.calls.append(("top", options))
        return {"profiler": "fake", "operations": [{"name": "conv", "ms_per_step": 3.0}]}


def _batches(n):
    return [(np.zeros((4, 2, 2, 1), np.float32), np.zeros(4, np.int64)) for _ in range(n)]


@pytest.mark.parametrize(("steps", "at"), [(10, 2), (2, 1), (1, 0)])
def test_it_measures_once_three_steps_in_or_at_the_end_of_a_shorter_epoch(tmp_path, steps, at):
    profiler = StepProfiler(FakeFramework(), run_dir=tmp_path, top_operations=False)
    taken = []
    for epoch in range(2):
        for i, (images, labels) in enumerate(profiler.batches(_batches(steps))):
            if profiler.due(i, steps):
                profiler.take(None, images, labels, lr=0.1, noise=None, step=epoch * steps + i + 1)
                taken.append((epoch, i))
    assert taken == [(0, at)]
    assert len(profiler.waits) == steps  # one wait per batch of the last epoch
    record = profiler.timings()["step_breakdown"]
    assert record["after_step"] == at + 1 and record["batch_size"] == 4 and record["data_ms"] >= 0
    assert record["step_ms"] == 10.0 and "top_operations" not in profiler.timings()


def test_the_top_operations_go_to_the_run_folder_and_the_row(tmp_path):
    fw = FakeFramework()
    profiler = StepProfiler(fw, run_dir=tmp_path, top_operations=True)
    images, labels = _batches(1)[0]
    profiler.take("trainer", images, labels, lr=0.1, noise={"fc": np.ones(4)}, step=3)
    assert [kind for kind, _ in fw.calls] == ["breakdown", "top"]
    assert fw.calls[1][1]["lr"] == 0.1 and "fc" in fw.calls[1][1]["noise"]  # the step's own rate and masks
    written = json.loads((tmp_path / PROFILE_FILE).read_text())
    assert written == profiler.timings()["top_operations"]
    assert written["framework"] == "fake" and written["operations"][0]["name"] == "conv"


def test_a_failing_profiler_is_recorded_not_raised(tmp_path):
    profiler = StepProfiler(FakeFramework(fail=True), run_dir=tmp_path, top_operations=False)
    images, labels = _batches(1)[0]
    profiler.take(None, images, labels, lr=0.1, noise=None, step=3)
    record = profiler.timings()["step_breakdown"]
    assert "no clock here" in record["failed"] and record["after_step"] == 3
    assert not profiler.due(0, 1)  # and it is not tried again
