"""`medbench run` end to end: a small real grid, locally and through a real local Ray cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medbench.results import ResultsStore

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "medmnist"

GRID = """
name = "{name}"
[grid]
datasets = {datasets}
sizes = [28]
frameworks = ["torch"]
models = ["simple_cnn"]
seeds = [0, 1]
[base.recipe]
epochs = 1
batch_size = 32
max_steps_per_epoch = 2
[base.runtime]
threads = 1
[resources]
cpus = 1
"""


def medbench(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "MEDBENCH_HOME": str(home),
        "MEDBENCH_CACHE_DIR": str(home / "cache"),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args], capture_output=True, text=True, env=env, timeout=900
    )


@pytest.mark.torch
def test_local_grid_refuses_a_bad_file_before_any_work_then_skips_what_is_done(tmp_path):
    corrupt = tmp_path / "pneumonia-corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04 truncated")
    exp = tmp_path / "grid.toml"
    one_seed = GRID.replace("seeds = [0, 1]", "seeds = [0]")  # a trial per dataset is enough here
    exp.write_text(one_seed.format(name="local_grid", datasets='["breastmnist", "pneumoniamnist"]'))
    args = [
        "run",
        str(exp),
        "--data-file",
        f"breastmnist={SHARED / 'breastmnist.npz'}",
        "--data-file",
        f"pneumoniamnist={corrupt}",
        "--report",
        str(tmp_path / "report"),
    ]
    first = medbench(*args, home=tmp_path)
    assert first.returncode == 2 and "Traceback" not in first.stderr  # refused in the parent ...
    assert "zip" in first.stderr and str(corrupt) in first.stderr
    store = tmp_path / "results.sqlite"
    assert not store.exists() or not ResultsStore(store).list_runs(experiment="local_grid")  # ... no rows

    shutil.copy(SHARED / "pneumoniamnist.npz", corrupt)  # fixed: the whole grid runs
    second = medbench(*args, home=tmp_path)
    assert second.returncode == 0, second.stdout[-3000:]
    runs = ResultsStore(store).list_runs(experiment="local_grid", status="completed")
    assert len(runs) == 2
    summary = next(line for line in second.stdout.splitlines() if line.lstrip().startswith("breastmnist "))
    assert " 28 " in summary  # the summary table: dataset and size in their own columns
    assert (tmp_path / "report" / "report.html").exists()
    third = medbench(*args, home=tmp_path)  # everything done: nothing runs again
    assert third.returncode == 0 and "2 already done" in third.stdout
    assert len(ResultsStore(store).list_runs(experiment="local_grid")) == 2


@pytest.mark.torch
@pytest.mark.slow  # tests/orchestration/test_ray_executor.py starts a real cluster by default
def test_grid_through_a_real_local_ray_cluster(tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'medbench[ray]')")
    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="ray_grid", datasets='["breastmnist"]'))
    result = medbench(
        "run",
        str(exp),
        "--executor",
        "ray",
        "--ray-cpus",
        "2",
        "--data-file",
        f"breastmnist={SHARED / 'breastmnist.npz'}",
        home=tmp_path,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = ResultsStore(tmp_path / "results.sqlite").list_runs(experiment="ray_grid")
    assert sorted(r.seed for r in runs) == [0, 1] and all(r.status == "completed" for r in runs)
    assert all(r.metrics["test_acc"] is not None for r in runs)
    # The rows came back from the Ray workers' node-local stores into this one.
    assert len({r.pid for r in runs}) == 2 and os.getpid() not in {r.pid for r in runs}


@pytest.mark.torch
@pytest.mark.slow  # `train --profile` (test_training_loop) covers the profile by default
def test_a_profiled_grid_puts_each_trials_costliest_operations_in_the_report(tmp_path):
    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="profiled", datasets='["breastmnist"]'))
    data = f"breastmnist={SHARED / 'breastmnist.npz'}"
    args = ["run", str(exp), "--data-file", data, "--report", str(tmp_path / "report")]
    result = medbench(*args, "--profile", home=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    runs = ResultsStore(tmp_path / "results.sqlite").list_runs(experiment="profiled")
    assert len(runs) == 2 and all(len(r.timings["top_operations"]["operations"]) == 10 for r in runs)
    assert all((Path(r.checkpoint_path) / "profile.json").exists() for r in runs)
    page = (tmp_path / "report" / "report.md").read_text()
    assert (
        "## Where the time goes" in page and "| torch (threads=1): torch.profiler (self CPU time) |" in page
    )
    again = medbench(*args, "--profile", home=tmp_path)  # profiling makes no new trial: both are done
    assert again.returncode == 0 and "2 already done" in again.stdout


def test_dry_run_lists_trials_without_running(tmp_path):
    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="dry", datasets='["breastmnist"]'))
    result = medbench("run", str(exp), "--dry-run", "--set", "grid.seeds=[0,1,2]", home=tmp_path)
    assert result.returncode == 0 and result.stdout.count("to run") == 3
    assert (
        not (tmp_path / "results.sqlite").exists()
        or not ResultsStore(tmp_path / "results.sqlite").list_runs()
    )


@pytest.mark.torch
def test_ctrl_c_stops_the_grid_and_records_the_trial_as_interrupted(tmp_path):
    """SIGINT to `medbench run` (alone, or with its worker as a terminal sends it): the running trial is
    recorded as interrupted, no further trial starts, and the command exits with 130."""
    exp = tmp_path / "grid.toml"
    slow = GRID.replace("epochs = 1", "epochs = 50").replace("max_steps_per_epoch = 2", "")
    exp.write_text(slow.format(name="interrupted_grid", datasets='["breastmnist"]'))
    env = {**os.environ, "MEDBENCH_HOME": str(tmp_path), "MEDBENCH_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(exp), "--data-file", f"breastmnist={SHARED / 'breastmnist.npz'}"]
    process = subprocess.Popen(
        [sys.executable, "-m", "medbench.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    store_path = tmp_path / "results.sqlite"
    try:
        for _ in range(
            600
        ):  # wait until the first trial has finished an epoch (its worker is well under way)
            progress = list(tmp_path.glob("runs/**/progress.json"))
            if progress:
                break
            assert process.poll() is None, process.stdout.read().decode()[-2000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGINT)  # to the parent only: it must pass it on and stop
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    runs = ResultsStore(store_path).list_runs(experiment="interrupted_grid")
    assert process.returncode == 130, output.decode()[-2000:]
    assert [r.status for r in runs] == ["interrupted"]  # the second seed never started


def test_dry_run_shows_trials_another_process_is_running(tmp_path):
    from medbench.leases import TrialLeases
    from medbench.orchestration.experiments import expand, load_experiment

    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="shared", datasets='["breastmnist"]'))
    first = expand(load_experiment(exp))[0]
    # This test process holds the first trial, as a `medbench run` elsewhere would while training it.
    claim = TrialLeases(ResultsStore(tmp_path / "results.sqlite")).claim(
        first.config_hash, kind="train", run_id="elsewhere-run"
    )
    assert claim.outcome == "claimed"
    result = medbench("run", str(exp), "--dry-run", home=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("running elsewhere") == 1 and result.stdout.count("to run") == 1


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.skipif(not SHARED.exists(), reason=f"needs the MedMNIST files in {SHARED}")
def test_two_runs_of_one_experiment_at_once_train_each_trial_once(tmp_path):
    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="twice", datasets='["breastmnist"]'))
    env = {**os.environ, "MEDBENCH_HOME": str(tmp_path), "MEDBENCH_CACHE_DIR": str(tmp_path / "cache")}
    args = ["run", str(exp), "--data-file", f"breastmnist={SHARED / 'breastmnist.npz'}"]
    ResultsStore(tmp_path / "results.sqlite")  # one schema, created before the two runs race
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "medbench.cli", *args],
            env={**env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    rows = ResultsStore(tmp_path / "results.sqlite").list_runs(experiment="twice")
    assert sorted((r.seed, r.status) for r in rows) == [(0, "completed"), (1, "completed")]
    assert any("running elsewhere" in out or "skipped" in out for out in outputs)


def test_run_never_replaces_a_users_file_at_the_official_path(tmp_path):
    """A non-official bloodmnist.npz in the data root is refused with the fix, not deleted and re-downloaded
    (offline, it used to be simply gone)."""
    from tests.data.fixtures import make_fake_medmnist

    root = tmp_path / "data"
    root.mkdir()
    mine = make_fake_medmnist(root, "bloodmnist", 28)
    before = mine.read_bytes()
    exp = tmp_path / "grid.toml"
    exp.write_text(GRID.format(name="users_file", datasets='["bloodmnist"]'))
    offline = tmp_path / "empty-mirror"
    offline.mkdir()
    env_home = tmp_path / "home"
    result = subprocess.run(
        [sys.executable, "-m", "medbench.cli", "run", str(exp)],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "MEDBENCH_HOME": str(env_home),
            "MEDBENCH_CACHE_DIR": str(env_home / "cache"),
            "MEDBENCH_DATA_ROOT": str(root),
            "MEDBENCH_MIRROR": offline.as_uri(),
            "COLUMNS": "200",
        },
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and "--data-file" in result.stderr, result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["bloodmnist.npz"]  # nothing moved, added or removed
    assert mine.read_bytes() == before
    store = env_home / "results.sqlite"
    assert not store.exists() or not ResultsStore(store).list_runs()  # refused before any trial started
