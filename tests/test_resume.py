"""Exact, single-row resume through the real CLI: a run killed at a chosen step and resumed with
`medbench train --resume` gives the uninterrupted run's numbers bit for bit, in the same store row.

The fault is real: a ``sitecustomize`` module on the worker's path makes the worker send itself SIGKILL (or
SIGINT, as Ctrl-C would) just before training step N, so the interrupt lands mid-epoch at the same place
every time. The data is a generated npz in the official layout, so the tests need nothing beside the repo.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from medbench.results import ResultsStore
from tests.data.fixtures import make_fake_medmnist

EPOCHS = 3
STEPS_PER_EPOCH = 6  # 96 training images in batches of 16
KILL_AT_STEP = 9  # the third step of epoch 2
FAULT_ENV = "MEDBENCH_TEST_FAULT"

SITECUSTOMIZE = f"""
import os

_fault = os.environ.get({FAULT_ENV!r})
if _fault:
    import signal
    from medbench import timing

    _name, _at = _fault.split(":")
    _step = timing.Chrono.step
    _count = [0]

    def _faulty_step(self, batch_size):
        _count[0] += 1
        if _count[0] == int(_at):
            os.kill(os.getpid(), getattr(signal, _name))
        return _step(self, batch_size)

    timing.Chrono.step = _faulty_step
"""


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    return make_fake_medmnist(
        folder / "tiny_breast.npz", "breastmnist", 28, {"train": 96, "val": 32, "test": 32}, seed=3
    )


def medbench(*args: str, home: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    hooks = home.parent / "hooks"
    hooks.mkdir(exist_ok=True)
    # written whole and renamed into place: two runs start side by side, and neither may see half a file
    staged = hooks / f"sitecustomize.{threading.get_ident()}.tmp"
    staged.write_text(textwrap.dedent(SITECUSTOMIZE))
    staged.replace(hooks / "sitecustomize.py")
    env = {
        **os.environ,
        "MEDBENCH_HOME": str(home),
        "MEDBENCH_CACHE_DIR": str(home / "cache"),
        "PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "COLUMNS": "200",
    }
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args], capture_output=True, text=True, env=env, timeout=900
    )


def train_args(framework: str, data_file: Path, *extra: str) -> list[str]:
    return [
        "train",
        "-q",
        "-f",
        framework,
        "-m",
        "simple_cnn",
        "-d",
        "breastmnist",
        "--data-file",
        str(data_file),
        "-e",
        str(EPOCHS),
        "-b",
        "16",
        "--threads",
        "1",
        "--set",
        "model_options.dropout=0.5",  # dropout masks: a random stream that must be restored
        "--set",
        "recipe.eval_batch_size=32",
        *extra,
    ]


def rows(home: Path):
    return ResultsStore(home / "results.sqlite").list_runs()


def comparable(metrics: dict) -> dict:
    """Every number a run produces (per-epoch losses, rates and validation metrics, the test metrics)."""
    keys = (
        "history",
        "first_losses",
        "best_epoch",
        "epochs_run",
        "test_acc",
        "test_auc",
        "val_acc",
        "val_auc",
    )
    return {k: metrics.get(k) for k in keys}


def interrupt_and_resume(
    framework: str, data_file: Path, tmp_path: Path, signal_name: str, *extra: str
) -> None:
    reference_home, home = tmp_path / "reference", tmp_path / "interrupted"
    args = train_args(framework, data_file, *extra)
    # the uninterrupted run and the one that dies are independent single-thread runs: side by side
    with ThreadPoolExecutor(max_workers=1) as pool:
        reference_done = pool.submit(medbench, *args, home=reference_home)
        killed = medbench(*args, home=home, fault=f"{signal_name}:{KILL_AT_STEP}")
        reference = reference_done.result()
    assert reference.returncode == 0, reference.stderr[-3000:]
    (expected,) = rows(reference_home)
    assert killed.returncode != 0
    (before,) = rows(home)
    assert before.status in ("failed", "interrupted"), before.status
    run_dir = next((home / "runs").iterdir())
    progress = json.loads((run_dir / "progress.json").read_text())
    assert progress["epochs_done"] == (KILL_AT_STEP - 1) // STEPS_PER_EPOCH == 1  # it died inside epoch 2

    resumed = medbench("train", "-q", "--resume", str(run_dir), home=home)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (after,) = rows(home)  # one row: the run's own, not a second one beside a failed one
    assert after.run_id == before.run_id and after.status == "completed"
    assert after.failure_reason is None
    assert comparable(after.metrics) == comparable(expected.metrics)  # bit for bit, every epoch
    assert [h["epoch"] for h in after.metrics["history"]] == list(range(1, EPOCHS + 1))

    # s/epoch: the training time of all three epochs (two of them trained by this process) over three
    t = after.timings
    assert t["train_s_all_processes"] == pytest.approx(progress["train_s"] + t["train_s"], rel=1e-9)
    assert t["train_s_all_processes"] > t["train_s"] > 0
    assert t["train_s_per_epoch"] == pytest.approx(t["train_s_all_processes"] / EPOCHS, rel=1e-9)


@pytest.mark.torch
def test_torch_run_killed_mid_epoch_resumes_exactly_in_its_own_row(data_file, tmp_path):
    interrupt_and_resume("torch", data_file, tmp_path, "SIGKILL")


@pytest.mark.torch
@pytest.mark.slow
def test_torch_run_interrupted_by_ctrl_c_resumes_exactly(data_file, tmp_path):
    interrupt_and_resume("torch", data_file, tmp_path, "SIGINT")


@pytest.mark.jax
@pytest.mark.slow
def test_jax_run_interrupted_mid_epoch_resumes_exactly(data_file, tmp_path):
    interrupt_and_resume("jax", data_file, tmp_path, "SIGINT")


@pytest.mark.keras
@pytest.mark.slow
def test_keras_run_killed_mid_epoch_resumes_exactly(data_file, tmp_path):
    interrupt_and_resume("keras", data_file, tmp_path, "SIGKILL")


# Keras on JAX and torch: with shared noise (the default) no mask is drawn in the framework; with native noise
# the dropout masks come from the seed generators' states (JAX) or torch's global generator (torch's fast
# unseeded dropout), which the saved state must restore.
NOISE = [pytest.param("shared"), pytest.param("native", marks=pytest.mark.slow)]


@pytest.mark.keras_jax
@pytest.mark.parametrize("noise", NOISE)
def test_keras_jax_run_killed_mid_epoch_resumes_exactly(noise, data_file, tmp_path):
    interrupt_and_resume("keras-jax", data_file, tmp_path, "SIGKILL", "--noise", noise)


@pytest.mark.keras_torch
@pytest.mark.slow  # keras-jax above covers Keras's portable path in the default suite
@pytest.mark.parametrize("noise", NOISE)
def test_keras_torch_run_killed_mid_epoch_resumes_exactly(noise, data_file, tmp_path):
    interrupt_and_resume("keras-torch", data_file, tmp_path, "SIGKILL", "--noise", noise)


@pytest.mark.torch
def test_resuming_a_completed_run_says_so_and_does_nothing(data_file, tmp_path):
    home = tmp_path / "home"
    first = medbench(*train_args("torch", data_file), "-e", "1", home=home)
    assert first.returncode == 0, first.stderr[-3000:]
    (done,) = rows(home)
    again = medbench("train", "-q", "--resume", done.checkpoint_path, home=home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already completed" in again.stdout and done.run_id[:8] in again.stdout
    (still,) = rows(home)  # no second row (with s/epoch 0.00)
    assert still.finished_at == done.finished_at and still.timings == done.timings


def test_a_second_resume_of_a_folder_in_use_is_refused_naming_the_holder(data_file, tmp_path):
    """The run-folder lock, held by another live process, refuses `--resume` before anything is touched."""
    run_dir = tmp_path / "home" / "runs" / "breastmnist-28-simple_cnn-torch-s0-0123abcd"
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.json").write_text(
        json.dumps(
            {
                "run_id": "0123abcd-0000-0000-0000-000000000000",
                "config": {"data": {"dataset": "breastmnist", "data_file": str(data_file)}},
            }
        )
    )
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from medbench.locks import RunFolderLock\n"
            "lock = RunFolderLock(sys.argv[1]); lock.acquire(); print('held', flush=True); time.sleep(600)",
            str(run_dir),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        refused = medbench("train", "-q", "--resume", str(run_dir), home=tmp_path / "home")
        assert refused.returncode in (1, 2), refused.stderr
        assert f"pid {holder.pid}" in refused.stderr and "in use" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not (tmp_path / "home" / "results.sqlite").exists() or not rows(tmp_path / "home")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
