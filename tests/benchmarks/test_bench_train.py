"""benchmarks/bench_train.py with faked probes: the cells it runs, in rounds, and the tables it prints."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from medbench.bench.train_probe import ProbeResult

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_train.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_train"] = module
    spec.loader.exec_module(module)
    return module


bench_train = _load_script()
# img/s of the bare loop by framework; compiled torch is 1.5x, the loop 0.9x of the bare loop
BARE = {"torch": 1000.0, "jax": 500.0}


def fake_probe(calls):
    def probe(config, *, mode="bare", **_):
        calls.append((config.framework, mode, config.runtime.compile))
        rate = (
            BARE[config.framework] * (1.5 if config.runtime.compile else 1.0) * (0.9 if mode == "loop" else 1)
        )
        rate *= 1 + 0.01 * (len(calls) % 2)  # rounds differ a little
        metrics = {"images_per_s": rate, "flops_per_image": 1e7, "steady_images_per_s": rate / 0.9}
        return ProbeResult("completed", mode, rate, metrics)

    return probe


@pytest.fixture
def run(monkeypatch, capsys, tmp_path):
    calls = []
    monkeypatch.setattr(bench_train, "run_probe", fake_probe(calls))
    tuned = tmp_path / "tuned.toml"
    tuned.write_text(
        'name = "t"\n[grid]\ndatasets = ["breastmnist"]\n[per_framework.torch.runtime]\ncompile = true\nthreads = 7\n'
    )

    def main(*args):
        code = bench_train.main(["-f", "torch", "-f", "jax", "-m", "simple_cnn", "-s", "28", "--no-peak",
                                 "--tuned-from", str(tuned), "--format", "json", *args])  # fmt: skip
        return code, capsys.readouterr().out, calls

    return main


def test_rounds_interleave_frameworks_and_tables_hold_ratios_to_torch_eager(run):
    code, out, calls = run("--rounds", "2")
    assert code == 0
    # per round: out of the box for both frameworks, then torch tuned (jax has nothing tuned), then the loops
    one_round = [("torch", "bare", None), ("jax", "bare", None), ("torch", "bare", True)]
    one_round += [("torch", "loop", None), ("jax", "loop", None)]
    assert calls == one_round * 2
    tables = json.loads(out)  # progress and environment lines go to stderr
    rows = {(r["framework"], r["variant"]): r for r in tables["training"]}
    assert set(rows) == {
        ("torch", "out of the box"),
        ("torch (tuned: compile)", "tuned"),
        ("jax", "out of the box"),
    }
    assert rows[("torch", "out of the box")]["ratio"] == pytest.approx(1.0)
    assert rows[("torch (tuned: compile)", "tuned")]["ratio"] == pytest.approx(1.5)
    assert rows[("jax", "out of the box")]["ratio"] == pytest.approx(0.5, rel=0.02)
    assert rows[("jax", "out of the box")]["effective_gflops_per_s"] == pytest.approx(
        3e7 * 500 / 1e9, rel=0.02
    )
    overhead = {r["framework"]: r for r in tables["overhead"]}
    assert overhead["torch"]["ratio"] == pytest.approx(0.9, rel=0.02) and overhead["jax"]["ratio_min"] > 0.85
    assert overhead["torch"]["loop_steps_images_per_s"] == pytest.approx(1000.0, rel=0.02)


def test_no_tune_and_no_harness_measure_out_of_the_box_only(run):
    code, out, calls = run("--rounds", "1", "--no-tune", "--no-harness")
    assert code == 0 and calls == [("torch", "bare", None), ("jax", "bare", None)]
    assert "overhead" not in out


def test_each_probe_is_written_as_it_ends_and_tables_follow_each_round(run, tmp_path):
    """A run cut short keeps what it measured: every probe a JSON line in --rows, the tables every round."""
    rows = tmp_path / "rows.jsonl"
    code, out, calls = run("--rounds", "2", "--rows", str(rows), "--format", "table")
    assert code == 0
    lines = [json.loads(line) for line in rows.read_text().splitlines()]
    assert len(lines) == len(calls) == 10
    assert [(r["framework"], r["variant"], r["round"]) for r in lines[:3]] == [
        ("torch", "out of the box", 1), ("jax", "out of the box", 1), ("torch", "tuned", 1),
    ]  # fmt: skip
    assert lines[2]["runtime"] == {"compile": True} and lines[0]["images_per_s"] > 0 and lines[0]["load"]
    assert out.count("training img/s: median") == 2  # after round 1 of 2, and the final tables
