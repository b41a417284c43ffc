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
    job = cell_job(config, cell, 1, "s1", ModelSize(reference=REFERENCE), {"peak_flops_per_s": 5e10})
    assert job["kind"] == "bench" and job["start"]["experiment"] == "s1" and job["start"]["size"] == 64
    c = job["cell"]
    assert c["engine"]["env"] == {"KERAS_BACKEND": "jax"} and c["repeat"] == 1
    assert (c["weights"], c["inputs"], c["reference"]) == ("w.safetensors", "x.npy", "y.npy")
    assert c["flops_per_image"] == 123 and c["peak_flops_per_s"] == 5e10
    assert c["measurement"]["min_count"] == config.measurement.min_count
    assert thread_env(3)["OMP_NUM_THREADS"] == "3"
