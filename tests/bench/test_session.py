"""The parent's bookkeeping: cells that cannot run become failed rows, jobs carry what a cell needs."""

from __future__ import annotations

from medbench.bench.plan import Cell, make_config
from medbench.bench.session import ModelSize, blocked_reason, cell_job, record_blocked, thread_env
from medbench.bench.summary import aggregate
from medbench.results import ResultsStore

REFERENCE = {"weights": "w.safetensors", "inputs": "x.npy", "reference": "y.npy", "flops_per_image": 123}


def test_a_cell_without_reference_or_export_is_blocked_with_the_reason():
    cell = Cell("onnx-keras", "simple_cnn", 28)
    assert "no reference outputs: boom" in blocked_reason(cell, ModelSize(error="no reference outputs: boom"))
    failed_export = ModelSize(reference=REFERENCE, artifacts={"onnx-keras": {"error": "tf2onnx: no"}})
    assert blocked_reason(cell, failed_export) == "export failed (onnx-keras): tf2onnx: no"
    ready = ModelSize(reference=REFERENCE, artifacts={"onnx-keras": {"path": "m.onnx"}})
    assert blocked_reason(cell, ready) is None


def test_blocked_cells_are_one_failed_row_each_and_summarised_as_failed(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    config = make_config(engines=["torch-eager"], sizes=[28], models=["simple_cnn"], threads=1)
    record_blocked(store, config, Cell("torch-eager", "simple_cnn", 28), "s1", "not installed: needs torch")
    (row,) = store.list_runs(kind="bench")
    assert row.status == "failed" and row.experiment == "s1" and row.config["engine"] == "torch-eager"
    (cell,) = aggregate([row])
    assert cell.status == "failed" and cell.reason == "not installed: needs torch"


def test_a_job_carries_the_engine_the_files_and_the_measurement_rules():
    config = make_config(engines=["keras-jax-jit"], sizes=[64], threads=1, repeats=2)
    cell = Cell("keras-jax-jit", "resnet18", 64)
    peaks = {"fma_peak_flops_per_s": 2e11, "best_kernel_flops_per_s": 5e10, "device": "cpu"}
    job = cell_job(config, cell, 1, "s1", ModelSize(reference=REFERENCE), peaks)
    assert job["kind"] == "bench" and job["start"]["experiment"] == "s1" and job["start"]["size"] == 64
    c = job["cell"]
    assert c["engine"]["env"] == {"KERAS_BACKEND": "jax"} and c["repeat"] == 1
    assert (c["weights"], c["inputs"], c["reference"]) == ("w.safetensors", "x.npy", "y.npy")
    assert c["flops_per_image"] == 123
    assert c["fma_peak_flops_per_s"] == 2e11 and c["best_kernel_flops_per_s"] == 5e10
    assert c["measurement"]["min_count"] == config.measurement.min_count
    assert thread_env(3)["OMP_NUM_THREADS"] == "3"


def test_engines_on_a_gpu_are_not_held_to_the_cpus_fma_peak():
    config = make_config(engines=["torch-eager"], sizes=[28], threads=1)
    peaks = {"fma_peak_flops_per_s": 2e11, "best_kernel_flops_per_s": 5e13, "device": "cuda"}
    job = cell_job(
        config, Cell("torch-eager", "simple_cnn", 28), 0, "s1", ModelSize(reference=REFERENCE), peaks
    )
    assert job["cell"]["fma_peak_flops_per_s"] is None and job["cell"]["best_kernel_flops_per_s"] == 5e13


def _peak_session(tmp_path, monkeypatch, *, fma: float | None, kernel_fails: bool):
    from medbench.bench import session
    from medbench.errors import WorkerDied

    def call_worker(job, *, env, timeout_s):
        assert job["kind"] == "kernel_peak" and job["args"]["threads"] == 1 and timeout_s > 0
        if kernel_fails:
            raise WorkerDied("the kernel_peak job ended without a result: worker killed", kind="kernel_peak")
        return {"best_kernel_flops_per_s": 3e11, "best_kernel_source": "torch_conv3x3"}

    monkeypatch.setattr(session, "call_worker", call_worker)
    monkeypatch.setattr(session, "fma_peak", lambda cores: {"fma_peak_flops_per_s": fma, "cores": cores})
    store = ResultsStore(tmp_path / "r.sqlite")
    config = make_config(engines=["torch-eager"], sizes=[28], models=["simple_cnn"], threads=1)
    peak = session.measure_peak(config, store, "s1", {})
    (row,) = store.list_runs(kind=session.PEAK_KIND)
    return peak, row


def test_the_peak_row_keeps_both_ceilings_and_how_the_fma_peak_was_had(tmp_path, monkeypatch):
    peak, row = _peak_session(tmp_path, monkeypatch, fma=5e11, kernel_fails=False)
    assert row.status == "completed" and row.metrics == peak and "ok" not in peak
    assert peak["fma_peak_flops_per_s"] == 5e11 and peak["fma_peak"]["cores"] == 1
    assert peak["best_kernel_flops_per_s"] == 3e11 and peak["best_kernel_source"] == "torch_conv3x3"


def test_a_failed_kernel_task_still_leaves_the_fma_peak(tmp_path, monkeypatch):
    peak, row = _peak_session(tmp_path, monkeypatch, fma=5e11, kernel_fails=True)
    assert row.status == "completed" and peak["best_kernel_flops_per_s"] is None
    assert "killed" in peak["best_kernel_error"] and peak["fma_peak_flops_per_s"] == 5e11


def test_without_either_ceiling_the_peak_row_fails(tmp_path, monkeypatch):
    peak, row = _peak_session(tmp_path, monkeypatch, fma=None, kernel_fails=True)
    assert peak is None and row.status == "failed" and "killed" in row.failure_reason
