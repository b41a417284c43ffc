"""The training loop end to end, as a user runs it: `medbench train`, `evaluate`, `predict`, `--resume`.

Every run is a real child process on the real (official) BreastMNIST file; steps are capped so the tests stay
fast, which is enough to check the plumbing, the stored row and that all three frameworks agree.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from medbench.results import ResultsStore

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "medmnist"
BREAST = SHARED / "breastmnist.npz"
SMALL = ["-d", "breastmnist", "--data-file", str(BREAST), "-b", "32", "--max-steps-per-epoch", "4"]
# torch in the default suite; JAX and Keras run the same checks in the full one (their own training paths
# are covered by default through test_shared_randomness and tests/frameworks)
FRAMEWORKS = [
    pytest.param("torch", marks=pytest.mark.torch),
    *(pytest.param(fw, marks=[getattr(pytest.mark, fw), pytest.mark.slow]) for fw in ("jax", "keras")),
]

pytestmark = pytest.mark.skipif(
    not BREAST.exists(), reason=f"needs the official BreastMNIST file at {BREAST}"
)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    return tmp_path / "home"


def medbench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def only_run(home: Path):
    runs = ResultsStore(home / "results.sqlite").list_runs()
    assert len(runs) == 1, [r.status for r in runs]
    return runs[0]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_train_then_evaluate_and_predict(home, tmp_path, framework):
    result = medbench("train", "-q", "-f", framework, "-m", "simple_cnn", "-e", "2", *SMALL)
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(home)
    assert run.status == "completed" and run.framework == framework
    m, t = run.metrics, run.timings
    assert 0 <= m["test_acc"] <= 1 and 0 <= m["test_auc"] <= 1 and m["test_acc_ci"]["low"] <= m["test_acc"]
    assert [h["epoch"] for h in m["history"]] == [1, 2] and m["epochs_run"] == 2
    assert len(m["first_losses"]) == 8 and all(np.isfinite(m["first_losses"]))
    for key in (
        "framework_import_s",
        "data_load_s",
        "model_build_s",
        "first_step_s",
        "evaluation_s",
        "train_s",
    ):
        assert t[key] > 0, key
    assert t["steps"] == 8 and t["steady_steps"] == 7 and t["peak_rss_bytes"] > 0
    assert t["train_s"] < t["wall_total_s"]  # evaluation and start-up are not training time
    # where the step goes: taken once, three steps in, in a phase of its own (not training time)
    b = t["step_breakdown"]
    assert b["after_step"] == 3 and b["batch_size"] == 32 and b["step_ms"] > 0 and b["method"]
    assert t["profile_s"] > 0 and "top_operations" not in t
    assert run.dataset_provenance["official"] and run.dataset_provenance["verified"]
    assert run.environment["framework"]["name"] == framework
    with np.load(BREAST) as data:  # the training split's class sizes, for the report's majority baseline
        counts = np.bincount(data["train_labels"].ravel(), minlength=2)
    assert m["train_label_counts"] == {"n_samples": int(counts.sum()), "per_class": counts.tolist()}
    folder = Path(run.checkpoint_path)
    assert (folder / "checkpoint.json").exists() and list(folder.glob("best.*"))
    # the per-image test predictions behind the paired tests between frameworks reproduce the stored metrics
    from medbench.metrics import official_metrics
    from medbench.stats.predictions import load_predictions

    kept, why = load_predictions(run)
    assert kept is not None, why
    assert kept.n == m["test_n_samples"] == 156 and kept.scores.dtype == np.float32
    again = official_metrics(kept.labels, kept.scores, kept.task)
    assert again["acc"] == pytest.approx(m["test_acc"]) and again["auc"] == pytest.approx(
        m["test_auc"], abs=1e-6
    )

    evaluated = medbench("evaluate", str(folder), "--json", "--bootstrap", "0")
    assert evaluated.returncode == 0, evaluated.stderr[-2000:]
    assert json.loads(evaluated.stdout)["acc"] == pytest.approx(m["test_acc"], abs=1e-9)

    from PIL import Image

    with np.load(BREAST) as data:
        Image.fromarray(data["test_images"][0]).save(tmp_path / "grey.png")
        Image.fromarray(np.stack([data["test_images"][1]] * 3, -1)).resize((96, 96)).save(
            tmp_path / "rgb.jpg"
        )
    (tmp_path / "broken.png").write_bytes(b"not an image")
    files = [str(tmp_path / n) for n in ("grey.png", "broken.png", "rgb.jpg")]
    predicted = medbench("predict", str(folder), *files, "--json")
    assert predicted.returncode == 1  # one file was unreadable ...
    assert "broken.png" in predicted.stderr and "Traceback" not in predicted.stderr
    rows = json.loads(predicted.stdout)  # ... and the others were still predicted
    assert [Path(r["image"]).name for r in rows] == ["grey.png", "rgb.jpg"]
    for row in rows:
        assert set(row["probabilities"]) == {"malignant", "normal, benign"}
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.torch
def test_a_profiled_run_lists_its_costliest_operations_and_changes_no_result(home, tmp_path):
    args = ("train", "-q", "-f", "torch", "-m", "simple_cnn", "-e", "1", *SMALL, "--set",
            "recipe.evaluate_train=false")  # fmt: skip
    plain = medbench(*args, "-o", str(tmp_path / "plain"))
    profiled = medbench(*args, "-o", str(tmp_path / "profiled"), "--profile")
    assert plain.returncode == profiled.returncode == 0, profiled.stderr[-2000:]
    runs = {Path(r.checkpoint_path).parent.name: r for r in ResultsStore(home / "results.sqlite").list_runs()}
    assert runs["plain"].config_hash == runs["profiled"].config_hash  # one trial: no part of the config
    for key in ("first_losses", "test_acc", "test_auc", "val_auc"):
        assert runs["profiled"].metrics[key] == runs["plain"].metrics[key], key
    top = json.loads((Path(runs["profiled"].checkpoint_path) / "profile.json").read_text())
    assert top == runs["profiled"].timings["top_operations"] and top["framework"] == "torch"
    assert 1 <= len(top["operations"]) <= 10 and top["profiler"].startswith("torch.profiler")
    assert not (Path(runs["plain"].checkpoint_path) / "profile.json").exists()


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.keras
def test_three_frameworks_from_the_same_weights_give_the_same_losses(home, tmp_path):
    """Same converted weights, same batches, same schedule: the step losses agree across frameworks."""
    weights = tmp_path / "init.safetensors"
    script = (
        "import sys; from safetensors.numpy import save_file; from medbench.frameworks import get_framework\n"
        "from medbench.config import RuntimeConfig\n"
        "fw = get_framework('torch'); fw.configure(RuntimeConfig(threads=1))\n"
        "m = fw.build_model('simple_cnn', num_classes=2, in_channels=1, image_size=28, dropout=0.0)\n"
        "save_file(fw.state_dict(m), sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(weights)], check=True, timeout=300)
    losses = {}
    for framework in ("torch", "jax", "keras"):
        result = medbench(
            "train",
            "-q",
            "-f",
            framework,
            "-m",
            "simple_cnn",
            "-e",
            "1",
            *SMALL,
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--set",
            f"init_weights={json.dumps(str(weights))}",
            "--set",
            "model_options.dropout=0",
        )
        assert result.returncode == 0, result.stderr[-2000:]
    for run in ResultsStore(home / "results.sqlite").list_runs():
        losses[run.framework] = np.array(run.metrics["first_losses"])
    assert len(losses["torch"]) == 4
    assert (
        losses["torch"][0] != losses["torch"][-1]
    )  # it did learn something, so later steps test the updates
    np.testing.assert_allclose(losses["jax"], losses["torch"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses["keras"], losses["torch"], rtol=1e-4, atol=1e-5)


@pytest.mark.torch
def test_interrupted_run_keeps_its_best_checkpoint_and_resumes(home, tmp_path):
    command = [
        sys.executable,
        "-m",
        "medbench.cli",
        "train",
        "-q",
        "-f",
        "torch",
        "-m",
        "simple_cnn",
        "-e",
        "6",
        *SMALL,
    ]
    command[-1] = "12"  # longer epochs, so the interrupt lands mid-run
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    runs_dir = home / "runs"
    deadline = time.monotonic() + 300
    progress = None
    while time.monotonic() < deadline and process.poll() is None:
        found = list(runs_dir.glob("*/progress.json")) if runs_dir.exists() else []
        if found and json.loads(found[0].read_text())["epochs_done"] >= 1:
            progress = found[0]
            break
        time.sleep(0.05)
    assert progress is not None, "the run never finished an epoch"
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group, as in a terminal
    process.wait(timeout=120)
    run = only_run(home)
    assert run.status == "interrupted" and "--resume" in run.failure_reason
    done_before = json.loads(progress.read_text())["epochs_done"]
    assert 1 <= done_before < 6 and list(progress.parent.glob("best.*"))

    resumed = medbench("train", "-q", "--resume", str(progress.parent))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    final = [r for r in ResultsStore(home / "results.sqlite").list_runs() if r.status == "completed"]
    assert len(final) == 1
    history = final[0].metrics["history"]
    assert [h["epoch"] for h in history] == list(range(1, 7))  # the epochs before the interrupt are kept


@pytest.mark.torch
def test_a_diverging_run_is_recorded_as_failed_with_a_clear_reason(home):
    result = medbench(
        "train",
        "-q",
        "-f",
        "torch",
        "-m",
        "simple_cnn",
        "-e",
        "2",
        *SMALL,
        "--optimizer",
        "sgd",
        "--lr",
        "1e12",
    )
    assert result.returncode == 1
    run = only_run(home)
    assert run.status == "failed" and "diverged" in run.failure_reason
    assert "Traceback" not in result.stdout


@pytest.mark.torch
def test_val_loss_selects_the_epoch_of_the_lowest_validation_loss(home):
    """select_metric = "val_loss" keeps the epoch whose validation loss is lowest (it once passed validation
    and then stopped the run after its first epoch)."""
    result = medbench("train", "-q", "-f", "torch", "-m", "simple_cnn", "-e", "4", *SMALL,
                      "--set", "recipe.select_metric=val_loss")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = only_run(home)
    losses = [h["val_loss"] for h in run.metrics["history"]]
    assert len(losses) == 4 and all(0 < v < 5 for v in losses)
    assert run.metrics["best_epoch"] == int(np.argmin(losses)) + 1
    assert run.status == "completed"


def test_bad_config_is_one_line_and_nothing_runs(home):
    result = medbench("train", "-f", "torch", "-d", "breastmnist", "--set", "recipe.batch_size=0")
    assert (
        result.returncode == 2 and "recipe.batch_size" in result.stderr and "Traceback" not in result.stderr
    )
    assert not (home / "results.sqlite").exists() or not ResultsStore(home / "results.sqlite").list_runs()
