"""What a finished run records (medbench.training.loop.record_result), with stand-ins for the framework."""

from __future__ import annotations

from types import SimpleNamespace

from medbench.training.loop import record_result
from medbench.training.run_folder import Progress


class _Store:
    def finish_run(self, run_id, *, metrics, timings, checkpoint_path):
        self.finished = (run_id, metrics, timings, checkpoint_path)


def test_the_frameworks_gpu_peak_is_recorded(tmp_path):
    """On a GPU the back-end's reader of the device-memory peak ends up in the timings (training once asked
    for an attribute no back-end has, so it recorded None on every GPU)."""
    progress = Progress(epochs_done=2, train_s=3.0, run_id="r1", best_epoch=2)
    state = SimpleNamespace(
        progress=progress,
        noise=None,
        start={"init": "shared"},
        config=SimpleNamespace(noise="shared"),
        tuning=SimpleNamespace(describe=lambda epoch: {"groups": ["all"], "trainable_params": 10}),
        init_record=None,
        chrono=SimpleNamespace(summary=lambda: {"train_s": 3.0}),
        fw=SimpleNamespace(gpu_peak=lambda: lambda: 123_456),
        profiler=SimpleNamespace(timings=lambda: {"step_breakdown": {"forward_ms": 1.0}}),
        run_dir=tmp_path,
    )
    store = _Store()
    record_result(state, store=store, metrics={})
    run_id, metrics, timings, folder = store.finished
    assert run_id == "r1" and folder == str(tmp_path)
    assert timings["gpu_peak_bytes"] == 123_456 and timings["peak_rss_bytes"] > 0
    assert timings["train_s_per_epoch"] == 1.5 and metrics["best_epoch"] == 2
    assert timings["step_breakdown"] == {"forward_ms": 1.0}  # the step profiler's record is kept
    state.fw = SimpleNamespace(gpu_peak=lambda: None)  # a CPU
    record_result(state, store=store, metrics={})
    assert store.finished[2]["gpu_peak_bytes"] is None
