"""The reference task and a real engine behind the same-answers gate."""

from __future__ import annotations

import numpy as np
import pytest

from medbench.bench.artifacts import randomize_batchnorm


def test_batchnorm_gets_non_trivial_statistics_and_convolutions_stay():
    state = {
        "conv.weight": np.ones((4, 3, 3, 3), np.float32),
        "bn.weight": np.ones(4, np.float32),
        "bn.bias": np.zeros(4, np.float32),
        "bn.running_mean": np.zeros(4, np.float32),
        "bn.running_var": np.ones(4, np.float32),
        "bn.num_batches_tracked": np.zeros((), np.int64),
    }
    out = randomize_batchnorm(state, seed=0)
    assert (
        out["conv.weight"] is state["conv.weight"]
        and out["bn.num_batches_tracked"] is state["bn.num_batches_tracked"]
    )
    for key in ("bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"):
        assert not np.array_equal(out[key], state[key]) and out[key].dtype == np.float32
    assert np.all(out["bn.running_var"] > 0)


@pytest.mark.slow
@pytest.mark.torch
def test_torch_eager_with_perturbed_weights_is_wrong_and_untimed(tmp_path):
    from safetensors.numpy import save_file

    from medbench.bench.artifacts import make_reference
    from medbench.bench.cell import run_bench_job
    from medbench.bench.engines import get_engine
    from medbench.frameworks.checkpoints import read_state_dict
    from medbench.results import ResultsStore
    from tests.bench.conftest import make_job

    ref = make_reference(
        model="simple_cnn",
        image_size=28,
        in_channels=3,
        num_classes=8,
        n_inputs=2,
        out_dir=tmp_path,
        threads=1,
    )
    state = read_state_dict(ref["weights"])
    state["fc2.bias"] = state["fc2.bias"] + np.float32(0.01)  # small, but ten times the tolerance
    save_file(state, str(tmp_path / "perturbed.safetensors"))
    store = tmp_path / "results.sqlite"
    for weights, expected in (
        (ref["weights"], "completed"),
        (str(tmp_path / "perturbed.safetensors"), "failed"),
    ):
        job = make_job(
            {"weights": weights, "inputs": ref["inputs"], "reference": ref["reference"]},
            store,
            batch_sizes=(1, 2),
        )
        job["cell"].update(
            engine=get_engine("torch-eager").to_dict(), model="simple_cnn", image_size=28, num_classes=8
        )
        run_bench_job(job)
        row = ResultsStore(store).get_run(job["run_id"])
        assert row.status == expected, row.failure_reason
    assert row.metrics["outcome"] == "wrong" and 0.009 < row.metrics["check_max_abs_diff"] < 0.011
    assert "latency_p50_ms" not in row.metrics
