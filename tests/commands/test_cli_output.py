"""Every table through the real CLI with stdout piped: whole, in percent, and in each --format."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest

from tests.commands.helpers import SHARED, medbench, populated_store

FORMATS = ("table", "csv", "json", "markdown")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return populated_store(tmp_path_factory.mktemp("store") / "results.sqlite")


def _whole(text: str) -> None:
    """Nothing cut (Rich's ellipsis) and no header folded over two lines."""
    assert "…" not in text


def test_datasets_piped_prints_every_cell_whole_in_each_format(tmp_path):
    table = medbench("datasets", home=tmp_path, MEDBENCH_DATA_ROOT=str(tmp_path))
    assert table.returncode == 0, table.stderr
    _whole(table.stdout)
    path = next(line for line in table.stdout.splitlines() if line.lstrip().startswith("pathmnist "))
    assert "89,996" in path and "10,004" in path and "CC BY 4.0" in path  # on one line, at COLUMNS=60
    assert "pneumoniamnist" in table.stdout
    rows = list(csv.DictReader(io.StringIO(medbench("datasets", "--format", "csv", home=tmp_path).stdout)))
    assert len(rows) == 14 and rows[0]["dataset"] == "pathmnist" and rows[0]["train"] == "89996"
    assert rows[0]["file_28"] in ("missing", "present")
    records = json.loads(medbench("datasets", "--format", "json", home=tmp_path).stdout)
    assert {r["dataset"] for r in records} >= {"bloodmnist", "dermamnist_e"}
    markdown = medbench("datasets", "--format", "markdown", home=tmp_path).stdout
    assert "| pathmnist | multi-class | 9 | 3 | 89,996 |" in markdown


def test_a_blank_line_separates_a_table_from_what_follows(tmp_path):
    out = medbench("info", "bloodmnist", home=tmp_path).stdout
    lines = out.splitlines()
    files = next(i for i, line in enumerate(lines) if line.startswith("files"))
    assert lines[files - 1].strip() == ""  # the classes table ended with a blank line
    assert "immature granulocytes(myelocytes, metamyelocytes and promyelocytes)" in out


def test_info_json_holds_classes_and_files_and_nothing_else_on_stdout(tmp_path):
    result = medbench("info", "breastmnist", "--format", "json", home=tmp_path)
    data = json.loads(result.stdout)  # the description went to stderr
    assert [c["name"] for c in data["classes"]] == ["malignant", "normal, benign"]
    assert data["files"][0]["md5"] == "750601b1f35ba3300ea97c75c52ff8f6"
    assert "BreastMNIST" in result.stderr


@pytest.mark.skipif(not (SHARED / "breastmnist.npz").is_file(), reason="needs ../shared/data/medmnist")
def test_verify_json_reports_each_file(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(SHARED / "breastmnist.npz", root / "breastmnist.npz")
    result = medbench("verify", "--root", str(root), "--format", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["dataset"] == "breastmnist" and row["status"] == "ok" and row["size"] == 28


def test_results_show_percent_like_the_report_in_every_format(tmp_path, store):
    table = medbench("results", "--store", str(store), "-x", "demo", "--kind", "train", home=tmp_path)
    assert table.returncode == 0, table.stderr
    _whole(table.stdout)
    assert "test ACC %" in table.stdout and "90.00" in table.stdout and "0.9000" not in table.stdout
    failed = next(line for line in table.stdout.splitlines() if "failed" in line)
    assert "ResourceExhaustedError: OOM when allocating tensor <shape 128x64x64>" in failed  # whole, one line
    records = json.loads(
        medbench("results", "--store", str(store), "-x", "demo", "--format", "json", home=tmp_path).stdout
    )
    torch0 = next(r for r in records if r["framework"] == "torch" and r["seed"] == 0 and r["size"] == 28)
    assert torch0["test_acc_pct"] == pytest.approx(90.0) and torch0["status"] == "completed"
    for fmt in ("csv", "markdown"):
        out = medbench("results", "--store", str(store), "--format", fmt, home=tmp_path)
        assert out.returncode == 0 and "pathmnist" in out.stdout


def test_results_export_dash_writes_full_runs_to_stdout(tmp_path, store):
    result = medbench("results", "--store", str(store), "-x", "demo", "--export", "-", home=tmp_path)
    assert result.returncode == 0, result.stderr
    from medbench.results import ResultsStore

    expected = [r.run_id for r in ResultsStore(store).list_runs(experiment="demo")]
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["run_id"] for r in rows] == expected and "config.recipe.epochs" in rows[0] and rows[0]["run_id"]
    as_json = medbench(
        "results", "--store", str(store), "-x", "demo", "--export", "-", "--format", "json", home=tmp_path
    )
    runs = json.loads(as_json.stdout)
    assert [r["run_id"] for r in runs] == expected and runs[0]["config"][
        "model"
    ] == "resnet18"  # nested, full rows


def test_bench_report_tables_whole_and_machine_readable(tmp_path, store):
    table = medbench("bench-report", "--store", str(store), "--session", "all", home=tmp_path)
    assert table.returncode == 0, table.stderr
    _whole(table.stdout)
    assert "wrong: wrong answers: max abs difference 0.31 > atol 0.001" in table.stdout
    assert "\n\nscaling with image size" in table.stdout  # a blank line before the next table
    data = json.loads(
        medbench(
            "bench-report", "--store", str(store), "--session", "all", "--format", "json", home=tmp_path
        ).stdout
    )
    assert set(data) == {"inference", "scaling"}
    assert {r["engine"] for r in data["inference"]} == {"torch-eager", "jax-jit", "keras-tf-xla"}
    torch28 = next(r for r in data["inference"] if (r["engine"], r["size"]) == ("torch-eager", 28))
    assert isinstance(torch28["p50_ms"], float) and torch28["p50_ms_min"] <= torch28["p50_ms"]  # numbers
    wrong = next(r for r in data["inference"] if r["status"] == "wrong")
    assert wrong["engine"] == "keras-tf-xla" and "max abs difference 0.31" in wrong["reason"]
    csv_text = medbench(
        "bench-report", "--store", str(store), "--session", "all", "--format", "csv", home=tmp_path
    )
    assert csv_text.stdout.startswith("# inference: median over repeats")


def test_list_engines_in_each_format(tmp_path):
    for fmt in FORMATS:
        result = medbench("bench", "--list-engines", "--format", fmt, home=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "torch-eager" in result.stdout and "keras-tf-xla" in result.stdout
    engines = json.loads(medbench("bench", "--list-engines", "--format", "json", home=tmp_path).stdout)
    xla = next(e for e in engines if e["engine"] == "keras-tf-xla")
    assert "tf.function(jit_compile=True)" in xla["measures"] and xla["installed"] in ("yes", "no")


def test_run_dry_run_lists_trials_whole_and_as_json(tmp_path):
    table = medbench("run", "quick", "--dry-run", home=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "bloodmnist-28-simple_cnn-default-keras-s0" in table.stdout  # was cut to "bloodmnist-28-…"
    trials = json.loads(medbench("run", "quick", "--dry-run", "--format", "json", home=tmp_path).stdout)
    assert [t["trial"].split("-")[-2] for t in trials] == ["torch", "jax", "keras"]
    assert all(t["status"] == "to run" for t in trials)


def test_run_summary_table_is_percent_with_spread(tmp_path, store):
    from medbench.commands.output import to_json
    from medbench.commands.run import summary_table
    from medbench.results import ResultsStore

    rows = json.loads(to_json([summary_table(ResultsStore(store), "demo")]))
    torch28 = next(r for r in rows if (r["framework"], r["size"], r["dataset"]) == ("torch", 28, "pathmnist"))
    assert torch28["test_acc_pct"] == pytest.approx(91.0) and torch28["test_acc_pct_std"] == pytest.approx(
        1.41421356
    )
    assert torch28["n"] == 2 and torch28["data"] == "official"
    custom = next(r for r in rows if r["dataset"] == "bloodmnist")
    assert custom["data"] == "custom file"


def test_finetune_presets_list_their_fields(tmp_path):
    result = medbench("finetune-presets", "--format", "json", home=tmp_path)
    presets = {p["name"]: p for p in json.loads(result.stdout)}
    assert set(presets) == {
        "linear_probe",
        "top1",
        "top2",
        "full",
        "full_discriminative",
        "full_frozen_bn",
        "gradual",
    }
    assert presets["gradual"]["unfreeze_every"] == "1" and presets["gradual"]["backbone_lr_scale"] == "0.1"
    assert presets["linear_probe"]["trainable"] == "head" and presets["full_frozen_bn"]["freeze_bn"] == "true"
