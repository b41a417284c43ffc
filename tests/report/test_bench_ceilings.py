"""The report's benchmark table and notes: both percentages, each labelled, and rows from before the FMA peak."""

from __future__ import annotations

from medbench.bench.summary import aggregate
from medbench.report.bench import CEILINGS_TEXT, bench_table, ceiling_notes
from medbench.results import ResultsStore
from tests.bench.rows import row

FMA_PEAK = {  # what medbench.bench.peak.fma_peak records, trimmed to what is read
    "method": "measured",
    "cores": 2,
    "clock_ghz": 4.1,
    "vector": "avx512",
    "fma_units": 2,
    "lanes_per_cycle": 32,
    "compiler": "/usr/bin/cc (gcc 12.2.0)",
    "flags": "-O2 -march=native",
}


def _store(tmp_path, *, legacy: bool):
    store = ResultsStore(tmp_path / "results.sqlite")
    session = "old" if legacy else "new"
    # 2 GFLOP per image x 100 img/s (batch 64) = 200 GFLOP/s, against 524.8 (FMA) and 250 (best kernel)
    r = row(
        "torch-eager",
        28,
        throughput={1: 50.0, 64: 100.0},
        flops=2e9,
        peak=2.5e11,
        fma_peak=5.248e11,
        legacy_peak=legacy,
        experiment=session,
    )
    run_id = store.start_run(
        **{k: r[k] for k in ("kind", "config", "framework", "model", "size", "experiment")}
    )
    store.finish_run(run_id, metrics=r["metrics"])
    if legacy:
        metrics = {"peak_flops_per_s": 2.5e11, "peak_source": "numpy", "threads": 2}
    else:
        metrics = {
            "fma_peak_flops_per_s": 5.248e11,
            "fma_peak": FMA_PEAK,
            "best_kernel_flops_per_s": 2.5e11,
            "best_kernel_source": "torch_conv3x3_channels_last",
            "threads": 2,
        }
    peak_id = store.start_run(kind="bench-peak", config={}, framework="numpy", experiment=session)
    store.finish_run(peak_id, metrics=metrics)
    return store.list_runs()


def _cells(table):
    (body,) = table.rows
    return dict(zip(table.headers, body.cells, strict=True))


def test_the_table_shows_the_fma_peak_and_the_best_kernel_apart(tmp_path):
    runs = _store(tmp_path, legacy=False)
    cells = _cells(bench_table(aggregate([r for r in runs if r.kind == "bench"])))
    assert "% of peak" not in cells
    assert cells["% of FMA peak"].text == "38.1" and cells["% of FMA peak"].numeric  # 200 / 524.8
    assert cells["% of best kernel"].text == "80.0"  # 200 / 250
    notes = [n.text for n in ceiling_notes(runs, [r for r in runs if r.kind == "bench"])]
    assert notes[0] == (
        "FMA peak 525 GFLOP/s = 2 cores x 4.10 GHz (measured) x 32 fp32 lanes (avx512, 2 FMA units) x 2; "
        "kernel built by /usr/bin/cc -O2 -march=native; "
        "best kernel 250.0 GFLOP/s: torch conv3x3 channels last (float32, 2 threads)"
    )
    assert (
        notes[-1] == CEILINGS_TEXT
        and "% of FMA peak" in CEILINGS_TEXT
        and "% of best kernel" in CEILINGS_TEXT
    )


def test_rows_stored_with_one_matmul_peak_still_render_as_percent_of_best_kernel(tmp_path):
    runs = _store(tmp_path, legacy=True)
    bench = [r for r in runs if r.kind == "bench"]
    assert "peak_flops_per_s" in bench[0].metrics and "best_kernel_flops_per_s" not in bench[0].metrics
    cells = _cells(bench_table(aggregate(bench)))
    assert cells["% of best kernel"].text == "80.0" and cells["% of FMA peak"].text == "-"
    notes = [n.text for n in ceiling_notes(runs, bench)]
    assert notes[0] == "best kernel 250.0 GFLOP/s: numpy matmul (float32, 2 threads)"
