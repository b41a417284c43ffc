"""The figures are written from store rows alone."""

from __future__ import annotations

from medbench.bench.plots import write_plots
from tests.bench.rows import row

PNG = b"\x89PNG\r\n\x1a\n"


def test_three_figures_per_model(tmp_path):
    rows = [row(e, s, p50=s / 28 * f) for s in (28, 64) for e, f in (("torch-eager", 1.0), ("jax-jit", 0.5))]
    rows.append(row("onnx-keras", 28, outcome="wrong", reason="wrong answers"))
    written = write_plots(rows, tmp_path / "plots")
    assert sorted(p.name for p in written) == [
        "simple_cnn_cold_start.png",
        "simple_cnn_latency_vs_size.png",
        "simple_cnn_throughput_vs_batch.png",
    ]
    assert all(p.read_bytes().startswith(PNG) for p in written)


def test_nothing_measured_draws_nothing(tmp_path):
    assert write_plots([row("jax-jit", 28, outcome="failed", reason="x")], tmp_path) == []
