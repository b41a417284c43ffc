"""Progress a log file can follow: one line per finished trial (``run``) and per epoch (``train``)."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from medbench.commands.run import GridDisplay
from medbench.progress import EpochProgress
from tests.commands.helpers import SHARED, medbench

HAVE_BREAST = (SHARED / "breastmnist.npz").is_file()


def _record(status="completed", acc=0.8912, reason=None):
    return SimpleNamespace(
        status=status,
        metrics={"test_acc": acc, "test_auc": 0.95} if status == "completed" else {},
        timings={"train_s_per_epoch": 3.25},
        failure_reason=reason,
    )


def test_grid_lines_name_the_trial_its_result_elapsed_and_eta():
    lines: list[str] = []
    display = GridDisplay(["a-torch", "a-jax", "a-keras"], {"a-torch": object()}, 1, log=lines.append)
    display.on_event("start", "a-jax", None)
    display.on_event("done", "a-jax", _record())
    display.on_event("start", "a-keras", None)
    display.on_event("done", "a-keras", _record("failed", reason="out of memory"))
    first, second = lines
    assert first.startswith("[1/2] a-jax  completed  test ACC 89.12%  test AUC 95.00%  3.25 s/epoch")
    assert re.search(r"elapsed \d+\.\d min  ETA \d+\.\d min$", first)  # one trial left
    assert second.startswith("[2/2] a-keras  failed  out of memory") and second.endswith("ETA 0 min")


def test_epoch_lines_carry_the_run_the_metrics_in_percent_and_an_eta():
    bar = EpochProgress(10, 5, title="torch simple_cnn breastmnist 28px seed 0", quiet=True)
    bar.start_epoch(0)
    line = bar.line({"epoch": 1, "train_loss": 0.5, "lr": 1e-3, "val_acc": 0.75, "val_auc": 0.8}, 2.0)
    assert line.startswith("torch simple_cnn breastmnist 28px seed 0  epoch   1/10  loss 0.5000")
    assert "val ACC 75.00%  val AUC 80.00%" in line and "elapsed" in line and "ETA" in line


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_BREAST, reason="needs ../shared/data/medmnist/breastmnist.npz")
def test_train_piped_prints_one_line_per_epoch_and_a_whole_summary(tmp_path):
    result = medbench(
        "train", "-f", "torch", "-d", "breastmnist", "--data-file", str(SHARED / "breastmnist.npz"),
        "-e", "2", "--max-steps-per-epoch", "2", "-b", "16", "--threads", "1",
        "--set", "recipe.evaluate_train=false", home=tmp_path, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    epochs = [line for line in result.stdout.splitlines() if " epoch " in line]
    assert len(epochs) == 2 and epochs[1].split("  epoch ")[1].startswith("  2/2")
    assert all("val ACC" in e and "elapsed" in e and "ETA" in e for e in epochs)
    summary = next(line for line in result.stdout.splitlines() if " completed " in line)
    assert "simple_cnn" in summary and "breastmnist" in summary and str(tmp_path / "runs") in summary  # whole
    # the run it stored, evaluated through the same API the CLI uses, as tables in percent
    from medbench import load_results

    (run,) = load_results(tmp_path / "results.sqlite")
    evaluated = medbench_cli_json("evaluate", run.checkpoint_path, "--bootstrap", "20", home=tmp_path)
    acc = next(r for r in evaluated["overall"] if r["metric"] == "ACC")
    assert acc["value_pct"] == pytest.approx(run.metrics["test_acc"] * 100)
    assert acc["ci_low_pct"] <= acc["value_pct"] <= acc["ci_high_pct"]
    assert [c["class"] for c in evaluated["per_class"]] == ["malignant", "normal, benign"]


def medbench_cli_json(*args: str, home):
    import json

    result = medbench(*args, "--format", "json", home=home, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.torch
@pytest.mark.skipif(not HAVE_BREAST, reason="needs ../shared/data/medmnist/breastmnist.npz")
def test_run_piped_prints_a_line_per_trial_then_the_summary(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(
        'name = "logged"\n[grid]\ndatasets = ["breastmnist"]\nframeworks = ["torch"]\nseeds = [0, 1]\n'
        "[base.recipe]\nepochs = 1\nbatch_size = 16\nmax_steps_per_epoch = 1\nevaluate_train = false\n"
        "[base.runtime]\nthreads = 1\n[resources]\ncpus = 1\n"
    )
    args = ("run", str(grid), "--data-file", f"breastmnist={SHARED / 'breastmnist.npz'}")
    result = medbench(*args, "--report", str(tmp_path / "report"), home=tmp_path, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    lines = result.stdout.splitlines()
    trials = [line for line in lines if line.startswith("[")]
    assert [t.split()[0] for t in trials] == ["[1/2]", "[2/2]"]
    assert trials[0].split()[1] == "breastmnist-28-simple_cnn-default-torch-s0" and "test ACC" in trials[0]
    assert trials[1].endswith("ETA 0 min")
    heading = lines.index(next(line for line in lines if line.startswith("logged: mean ± std")))
    row = next(line for line in lines[heading:] if line.lstrip().startswith("breastmnist "))
    assert "torch" in row and " 2 " in row  # two seeds in one row of the summary
