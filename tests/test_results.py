"""Tests of the results store: lifecycle, concurrent writers, killed processes, schema versions, exports."""

from __future__ import annotations

import csv
import hashlib
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medbench.config import config_hash
from medbench.errors import MedbenchError
from medbench.results import (
    ResultsStore,
    ResultsStoreError,
    RunNotFoundError,
    SchemaVersionError,
    export,
    flatten_run,
    schema,
)
from medbench.results import store as store_module

CONFIG = {"model": "simple_cnn", "dataset": "pathmnist", "train": {"epochs": 2, "lr": 1e-3}, "seed": 0}


@pytest.fixture
def store(tmp_path) -> ResultsStore:
    return ResultsStore(tmp_path / "results.sqlite")


def start(store: ResultsStore, **overrides) -> str:
    args = {
        "kind": "train",
        "config": CONFIG,
        "framework": "torch",
        "model": "simple_cnn",
        "dataset": "pathmnist",
    }
    args.update(size=28, seed=0)
    return store.start_run(**{**args, **overrides})


# ---- config hash --------------------------------------------------------------------------------------


def test_config_hash_is_sha256_of_canonical_json():
    expected = hashlib.sha256(b'{"a":1,"b":[1,2],"c":{"x":"y"}}').hexdigest()
    assert config_hash({"c": {"x": "y"}, "b": (1, 2), "a": 1}) == expected
    assert config_hash({"a": 1, "b": [1, 2], "c": {"x": "y"}}) == expected
    assert config_hash({"a": 2, "b": [1, 2], "c": {"x": "y"}}) != expected
    assert config_hash({"p": Path("/data"), "s": {3, 1, 2}}) == config_hash({"p": "/data", "s": [1, 2, 3]})


def test_config_hash_refuses_what_json_cannot_hold():
    with pytest.raises(TypeError, match=r"value\['bad'\]"):
        config_hash({"bad": object()})


# ---- location -----------------------------------------------------------------------------------------


def test_location_argument_env_then_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv(schema.RESULTS_ENV_VAR, raising=False)
    default = ResultsStore()
    assert default.path == tmp_path / "home" / ".medbench" / "results.sqlite"
    assert default.path.is_file()
    monkeypatch.setenv(schema.RESULTS_ENV_VAR, str(tmp_path / "env" / "deep" / "r.sqlite"))
    assert ResultsStore().path == tmp_path / "env" / "deep" / "r.sqlite"
    assert ResultsStore(tmp_path / "arg.sqlite").path == tmp_path / "arg.sqlite"


# ---- lifecycle ----------------------------------------------------------------------------------------


def test_start_finish_and_read_back(store):
    run_id = start(
        store, experiment="exp1", environment={"cpu": {"model": "x"}}, dataset_provenance={"md5": "ab"}
    )
    running = store.get_run(run_id)
    assert running.status == "running" and running.finished_at is None
    assert running.config == CONFIG and running.config_hash == config_hash(CONFIG)
    assert running.pid == os.getpid()
    store.finish_run(
        run_id,
        metrics={"test": {"acc": 0.9, "auc": float("nan")}},
        timings={"train_s": 12.5},
        checkpoint_path=Path("/ckpt/model.pt"),
    )
    done = store.get_run(run_id)
    assert done.status == "completed" and done.finished_at >= done.created_at
    assert done.metrics == {"test": {"acc": 0.9, "auc": None}}  # strict JSON: NaN is stored as null
    assert done.timings == {"train_s": 12.5}
    assert done.checkpoint_path == "/ckpt/model.pt"
    assert (done.experiment, done.size, done.seed) == ("exp1", 28, 0)
    assert done.environment == {"cpu": {"model": "x"}} and done.dataset_provenance == {"md5": "ab"}
    assert store.get_run(run_id[:8]).run_id == run_id


def test_fail_and_update(store):
    run_id = start(store)
    store.update_run(run_id, checkpoint_path="/ckpt/epoch1.pt", metrics={"val_acc": 0.5})
    store.fail_run(run_id, "ValueError: boom", timings={"train_s": 1.0})
    failed = store.get_run(run_id)
    assert failed.status == "failed" and failed.failure_reason == "ValueError: boom"
    assert failed.checkpoint_path == "/ckpt/epoch1.pt" and failed.metrics == {"val_acc": 0.5}
    with pytest.raises(TypeError):
        store.update_run(run_id, status="completed")
    with pytest.raises(ValueError):
        store.fail_run(run_id, "x", status="completed")


def test_a_completed_run_cannot_be_changed(store):
    run_id = start(store)
    store.finish_run(run_id, metrics={"acc": 1.0})
    with pytest.raises(ValueError, match="already completed"):
        store.fail_run(run_id, "late failure")
    assert store.get_run(run_id).metrics == {"acc": 1.0}


def test_unknown_run_id(store):
    with pytest.raises(RunNotFoundError, match="No run"):
        store.finish_run("nope", metrics={})
    with pytest.raises(RunNotFoundError):
        store.get_run("0000")


def test_run_context_manager(store):
    with store.run(kind="bench", config={"b": 1}) as active:
        active.metrics["ips"] = 100.0
    assert store.get_run(active.run_id).status == "completed"
    assert store.get_run(active.run_id).metrics == {"ips": 100.0}

    with pytest.raises(RuntimeError), store.run(kind="bench", config={"b": 2}) as failing:
        failing.timings["first_step_s"] = 3.0
        raise RuntimeError("out of memory")
    failed = store.get_run(failing.run_id)
    assert failed.status == "failed" and failed.failure_reason == "RuntimeError: out of memory"
    assert failed.timings == {"first_step_s": 3.0}

    with pytest.raises(KeyboardInterrupt), store.run(kind="bench", config={"b": 3}) as stopped:
        raise KeyboardInterrupt
    assert store.get_run(stopped.run_id).status == "interrupted"


# ---- queries ------------------------------------------------------------------------------------------


def test_list_runs_filters(store):
    a = start(store, framework="torch", experiment="e")
    b = start(store, framework="jax", experiment="e", config={**CONFIG, "seed": 1}, seed=1)
    c = start(store, framework="keras", kind="bench")
    store.finish_run(a, metrics={})
    assert [r.run_id for r in store.list_runs()] == [a, b, c]
    assert [r.run_id for r in store.list_runs(framework="jax")] == [b]
    assert [r.run_id for r in store.list_runs(framework=["jax", "keras"])] == [b, c]
    assert [r.run_id for r in store.list_runs(experiment=None)] == [c]
    assert [r.run_id for r in store.list_runs(status="running", kind="train")] == [b]
    assert [r.run_id for r in store.list_runs(config_hash=config_hash(CONFIG), seed=0)] == [a, c]
    assert store.list_runs(framework=[]) == []
    assert len(store.list_runs(limit=2)) == 2
    assert isinstance(store.list_runs(framework="torch")[0].config, dict)
    with pytest.raises(TypeError, match="unknown filter"):
        store.list_runs(colour="red")


def test_find_completed_for_resume(store):
    digest = config_hash(CONFIG)
    assert store.find_completed(digest) is None
    first = start(store)
    assert store.find_completed(digest) is None  # running is not done
    store.finish_run(first, metrics={"acc": 0.1})
    second = start(store)
    store.finish_run(second, metrics={"acc": 0.2})
    start(store)  # a newer running one does not count
    assert store.find_completed(digest).run_id == second
    assert store.find_completed(digest, kind="bench") is None


# ---- concurrency --------------------------------------------------------------------------------------


def _write_runs(path: str, worker: int, count: int, barrier) -> None:
    """A spawned writer: waits for the others, then writes ``count`` complete runs as fast as it can."""
    store = ResultsStore(path)
    barrier.wait()
    for i in range(count):
        run_id = store.start_run(kind="train", config={"worker": worker, "i": i}, framework=f"w{worker}")
        store.finish_run(run_id, metrics={"i": i}, timings={"worker": worker})


def test_concurrent_writers_lose_nothing(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResultsStore(path)
    workers, count = 4, 25
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(workers)
    processes = [
        context.Process(target=_write_runs, args=(str(path), w, count, barrier)) for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0] * workers
    runs = ResultsStore(path).list_runs()
    assert len(runs) == workers * count
    assert all(run.status == "completed" for run in runs)
    assert {(run.config["worker"], run.config["i"]) for run in runs} == {
        (w, i) for w in range(workers) for i in range(count)
    }
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_writer_waits_for_a_lock_then_gives_up_clearly(store):
    run_id = start(store)
    impatient = ResultsStore(store.path, timeout_s=0.2)
    holder = sqlite3.connect(store.path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")  # another process in the middle of a long write
        with pytest.raises(ResultsStoreError, match="stayed locked") as info:
            impatient.finish_run(run_id, metrics={"acc": 1.0})
        assert str(store.path) in info.value.problem
        assert impatient.get_run(run_id).status == "running"  # readers are not blocked (WAL)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    impatient.finish_run(run_id, metrics={"acc": 1.0})
    assert store.get_run(run_id).status == "completed"


def test_database_is_locked_is_retried(store, monkeypatch):
    real_attempt = ResultsStore._attempt
    failures = [sqlite3.OperationalError("database is locked")] * 2

    def flaky_attempt(self, op, begin):
        if failures:
            raise failures.pop()
        return real_attempt(self, op, begin)

    monkeypatch.setattr(ResultsStore, "_attempt", flaky_attempt)
    run_id = start(store)
    assert failures == []
    assert store.get_run(run_id).status == "running"
    failures[:] = [sqlite3.OperationalError("disk I/O error")] * 3  # not a lock: no retry
    with pytest.raises(ResultsStoreError, match="disk I/O error"):
        store.get_run(run_id)
    assert len(failures) == 2


# ---- crashes ------------------------------------------------------------------------------------------


def _child(code: str, path: Path) -> subprocess.Popen:
    script = "import sys\nfrom medbench.results import ResultsStore\nstore = ResultsStore(sys.argv[1])\n"
    return subprocess.Popen(
        [sys.executable, "-c", script + textwrap.dedent(code), str(path)], stdout=subprocess.PIPE, text=True
    )


def _kill(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_a_killed_run_stays_running_and_others_survive(store):
    mine = start(store)  # a live run of this process: the sweep must leave it alone
    child = _child(
        """
        for i in range(3):
            run_id = store.start_run(kind="train", config={"i": i})
            store.finish_run(run_id, metrics={"i": i})
        print(store.start_run(kind="train", config={"i": "doomed"}), flush=True)
        import time; time.sleep(60)
        """,
        store.path,
    )
    try:
        doomed = child.stdout.readline().strip()
    finally:
        _kill(child)
    assert child.returncode == -signal.SIGKILL
    statuses = {run.run_id: run.status for run in store.list_runs()}
    assert statuses[doomed] == "running"
    assert sorted(statuses.values()) == ["completed"] * 3 + ["running"] * 2

    assert store.mark_stale_running() == [doomed]
    swept = store.get_run(doomed)
    assert swept.status == "interrupted" and "ended without finishing" in swept.failure_reason
    assert store.get_run(mine).status == "running"
    assert len(store.list_runs(status="completed")) == 3


def test_killed_in_the_middle_of_writes_loses_no_finished_run(store):
    child = _child(
        """
        i = 0
        while True:
            run_id = store.start_run(kind="train", config={"i": i}, environment={"pad": "x" * 5000})
            store.finish_run(run_id, metrics={"i": i}, timings={"t": [0.1] * 200})
            print(run_id, flush=True)
            i += 1
        """,
        store.path,
    )
    try:
        finished = [child.stdout.readline().strip() for _ in range(30)]
    finally:
        _kill(child)
    completed = {run.run_id for run in store.list_runs(status="completed")}
    assert set(finished) <= completed
    assert len(store.list_runs(status="running")) <= 1
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.finish_run(start(store), metrics={})  # still writable


def test_mark_stale_by_age(store, monkeypatch):
    run_id = start(store)
    assert store.mark_stale_running(older_than_s=3600) == []
    monkeypatch.setattr(store_module.time, "time", lambda: 4102444800.0)  # the year 2100
    assert store.mark_stale_running(older_than_s=3600, status="failed") == [run_id]
    assert store.get_run(run_id).status == "failed"


# ---- schema versions ----------------------------------------------------------------------------------


def _set_version(path: Path, version: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))


def test_a_newer_schema_is_refused_clearly(store):
    _set_version(store.path, schema.SCHEMA_VERSION + 1)
    with pytest.raises(SchemaVersionError) as info:
        ResultsStore(store.path)
    assert str(store.path) in str(info.value)
    assert "newer medbench" in info.value.problem and "Upgrade medbench" in info.value.fix


def test_an_older_schema_is_migrated(store, monkeypatch):
    run_id = start(store)
    calls = []

    def add_note(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    monkeypatch.setitem(schema.MIGRATIONS, current, add_note)
    migrated = ResultsStore(store.path)
    assert calls == [1] and migrated.schema_version() == current + 1
    assert migrated.get_run(run_id).status == "running"
    with sqlite3.connect(store.path) as conn:
        assert "note" in [row[1] for row in conn.execute("PRAGMA table_info(runs)")]
    ResultsStore(store.path)
    assert calls == [1]  # already at the new version: not migrated twice


def test_a_missing_migration_is_an_error(store, monkeypatch):
    current = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current + 1)
    with pytest.raises(SchemaVersionError, match="no migration"):
        ResultsStore(store.path)
    monkeypatch.setattr(schema, "SCHEMA_VERSION", current)
    assert ResultsStore(store.path).schema_version() == current  # the failed migration changed nothing


def test_a_version_1_store_gains_the_leases_table_and_keeps_its_rows(tmp_path):
    path = tmp_path / "v1.sqlite"
    with sqlite3.connect(path) as conn:  # a store as medbench wrote it before trial leases
        for statement in schema._BASE_SCHEMA:
            conn.execute(statement)
        conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
        conn.execute(
            "INSERT INTO runs (run_id, kind, status, created_at, config, config_hash) "
            "VALUES ('r1', 'train', 'completed', '2026-01-01T00:00:00+00:00', '{}', 'h')"
        )
    store = ResultsStore(path)
    assert store.schema_version() == 2 and store.get_run("r1").status == "completed"
    with sqlite3.connect(path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(leases)")]
    assert {"config_hash", "kind", "run_id", "hostname", "pid", "heartbeat_at"} <= set(columns)


# ---- bad files ----------------------------------------------------------------------------------------


def test_a_text_file_is_refused_with_path_and_fix(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("this is not a database\n")
    with pytest.raises(ResultsStoreError) as info:
        ResultsStore(path)
    assert str(path) in info.value.problem and "not a SQLite file" in info.value.problem
    assert "MEDBENCH_RESULTS" in info.value.fix
    assert path.read_text() == "this is not a database\n"  # left untouched


def test_a_corrupt_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    with pytest.raises(ResultsStoreError, match="corrupt") as info:
        ResultsStore(path)
    assert str(path) in str(info.value)


def test_a_store_with_damaged_pages_is_refused(store):
    for i in range(5):
        start(store, config={"i": i})
    data = bytearray(store.path.read_bytes())
    page = 4096
    data[page:] = b"\xff" * (len(data) - page)  # keep the header page, wreck the tables
    store.path.write_bytes(bytes(data))
    with pytest.raises(ResultsStoreError, match=str(store.path)):
        ResultsStore(store.path).list_runs()


def test_another_programs_database_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE photos (id INTEGER)")
    with pytest.raises(ResultsStoreError, match="not a medbench results store"):
        ResultsStore(path)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(ResultsStoreError, match="is a folder"):
        ResultsStore(tmp_path)


# ---- export -------------------------------------------------------------------------------------------


@pytest.fixture
def finished_runs(store):
    for framework, acc in (("torch", 0.91), ("jax", 0.9)):
        run_id = start(store, framework=framework, environment={"gpus": []})
        store.finish_run(
            run_id,
            metrics={"test": {"acc": acc, "auc": 0.95}, "per_class_auc": [0.9, 1.0]},
            timings={"train_s": 10 if framework == "torch" else 10.5, "steady_images_per_s": 1234.5},
        )
    store.fail_run(start(store, framework="keras"), "ImportError: no tensorflow")
    return store.list_runs()


def test_flatten_run(finished_runs):
    flat = flatten_run(finished_runs[0])
    assert flat["metrics.test.acc"] == 0.91
    assert flat["metrics.per_class_auc"] == "[0.9, 1.0]"
    assert flat["timings.train_s"] == 10
    assert flat["config.train.lr"] == 1e-3
    assert json.loads(flat["environment"]) == {"gpus": []}
    assert "metrics" not in flat and "config" not in flat


def test_export_csv(finished_runs, tmp_path):
    path = export(finished_runs, tmp_path / "out" / "runs.csv")
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["framework"] for row in rows] == ["torch", "jax", "keras"]
    assert float(rows[0]["metrics.test.acc"]) == 0.91
    assert float(rows[1]["timings.steady_images_per_s"]) == 1234.5
    assert rows[2]["metrics.test.acc"] == "" and rows[2]["status"] == "failed"
    assert list(rows[0])[0] == "run_id"


def test_export_json(finished_runs, tmp_path):
    path = export(finished_runs, tmp_path / "runs.json")
    loaded = json.loads(path.read_text())
    assert loaded == [run.to_dict() for run in finished_runs]
    assert loaded[0]["metrics"]["test"]["acc"] == 0.91


def test_export_parquet(finished_runs, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = export(finished_runs, tmp_path / "runs.data", format="parquet")
    table = pq.read_table(path)
    rows = table.to_pylist()
    assert [row["framework"] for row in rows] == ["torch", "jax", "keras"]
    assert rows[0]["metrics.test.acc"] == 0.91 and rows[2]["metrics.test.acc"] is None
    assert str(table.schema.field("timings.train_s").type) == "double"  # int and float mixed: floats
    assert rows[0]["size"] == 28


def test_export_parquet_without_pyarrow(finished_runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(MedbenchError, match="pip install pyarrow"):
        export(finished_runs, tmp_path / "runs.parquet")
    assert not (tmp_path / "runs.parquet").exists()
    assert list(tmp_path.glob(".runs.parquet*")) == []  # no temporary file left behind


def test_export_unknown_format(finished_runs, tmp_path):
    with pytest.raises(MedbenchError, match="format"):
        export(finished_runs, tmp_path / "runs.xlsx")


def test_a_resumed_run_reopens_its_own_row_and_a_completed_one_stays_closed(store):
    run_id = store.start_run(kind="train", config=CONFIG)
    store.fail_run(run_id, "worker killed by SIGKILL", timings={"train_s": 1.0})
    store.reopen_run(run_id)
    (row,) = store.list_runs()
    assert (row.run_id, row.status, row.failure_reason, row.finished_at) == (run_id, "running", None, None)
    assert row.pid == os.getpid() and row.timings == {"train_s": 1.0}
    store.finish_run(run_id, metrics={"test_acc": 0.5})
    with pytest.raises(ValueError, match="already completed"):
        store.reopen_run(run_id)
    with pytest.raises(RunNotFoundError):
        store.reopen_run("no-such-run")
    assert [r.status for r in store.list_runs()] == ["completed"]
