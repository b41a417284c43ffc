"""Every table through the real CLI with stdout piped: whole, in percent, and in each --format."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from statsmodels.stats.multitest import multipletests

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


# ---- the end of a grid and `compare`: wider than any terminal, so piped they must not be cut --------------

FINISHED_GRID = """
name = "finished_grid_with_a_long_name"
[grid]
datasets = ["breastmnist"]
frameworks = ["torch", "jax"]
models = ["simple_cnn"]
seeds = [0, 1, 2]
"""


def _finished_grid(tmp_path):
    """An experiment whose every trial already has a completed row (torch 5 points above jax at each seed),
    so `medbench run` trains nothing and goes straight to its summary and verdicts."""
    from medbench.orchestration.experiments import expand, load_experiment
    from medbench.orchestration.jobs import start_columns
    from medbench.results import ResultsStore

    grid = tmp_path / "grid.toml"
    grid.write_text(FINISHED_GRID)
    spec = load_experiment(grid)
    store = ResultsStore(tmp_path / "results.sqlite")
    for trial in expand(spec):
        c = trial.config
        gap = 0.05 if c.framework == "torch" else 0.0
        run_id = store.start_run(**start_columns(c, experiment=spec.name))
        store.finish_run(
            run_id,
            metrics={"test_acc": 0.80 + gap + 0.001 * c.seed, "test_auc": 0.90 + gap / 2 + 0.002 * c.seed},
            timings={"train_s_per_epoch": 2.0 if gap else 5.0, "steady_images_per_s": 500.0 + c.seed},
        )
    assert all(store.find_completed(t.config_hash, kind="train") for t in expand(spec))
    return grid


def test_run_piped_prints_its_summary_and_verdicts_whole(tmp_path):
    grid = _finished_grid(tmp_path)
    result = medbench("run", str(grid), "--report", str(tmp_path / "report"), home=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    _whole(result.stdout)
    assert "6 already done" in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("finished_grid_with_a_long_name: mean ± std over seeds") for line in lines)
    torch = next(line for line in lines if line.lstrip().startswith("breastmnist ") and " torch " in line)
    # every cell of the row on its one line, at COLUMNS=60: size, model, seeds, ACC ± std, AUC, s/epoch, img/s
    for cell in (" 28 ", "simple_cnn", " 3 ", "85.10 ± 0.10", "92.70 ± 0.20", "2.00", "501 ± 1"):
        assert cell in torch, (cell, torch)
    pair = next(line for line in lines if "torch - jax" in line and " ACC " in line)
    assert "5.00" in pair and "different" in pair  # the pair's difference and its verdict on one line
    speed = next(line for line in lines if "torch / jax" in line and "s/epoch" in line)
    assert "0.400" in speed and "faster" in speed


def test_run_summary_and_verdicts_in_machine_formats(tmp_path):
    grid = _finished_grid(tmp_path)
    report = ("--report", str(tmp_path / "report"))
    result = medbench("run", str(grid), *report, "--format", "json", home=tmp_path)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    data = json.loads(result.stdout)  # progress and the report's path went to stderr
    assert set(data) == {"summary", "pairs", "speed"} and "report:" in result.stderr
    torch = next(r for r in data["summary"] if r["framework"] == "torch")
    assert torch["test_acc_pct"] == pytest.approx(85.1) and torch["test_acc_pct_std"] == pytest.approx(0.1)
    acc = next(r for r in data["pairs"] if r["metric"] == "ACC")
    assert acc["pair"] == "torch - jax" and acc["diff_pts"] == pytest.approx(5.0) and acc["seeds"] == 3
    as_csv = medbench("run", str(grid), *report, "--format", "csv", home=tmp_path).stdout
    titles = [line for line in as_csv.splitlines() if line.startswith("# ")]
    assert len(titles) == 3 and titles[0].startswith("# finished_grid_with_a_long_name: mean ± std")
    summary = as_csv.split("\n\n")[0].splitlines()[1:]
    assert summary[0].startswith("dataset,size,data,model,variant,framework,n,test_acc_pct,test_acc_pct_std")


@pytest.fixture(scope="module")
def pairs_store(tmp_path_factory):
    from tests.stats.fakes import build_store

    return build_store(tmp_path_factory.mktemp("pairs")).path


def test_compare_piped_prints_every_cell_whole(tmp_path, pairs_store):
    result = medbench("compare", "--store", str(pairs_store), "--bootstrap", "50", home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    _whole(result.stdout)
    lines = result.stdout.splitlines()
    noisy = next(line for line in lines if " noisy " in line and " ACC " in line)
    # one line at COLUMNS=60: the image test's text, the verdict and the seeds it still needs (sized for
    # Holm's strictest step, alpha / 12)
    assert "McNemar exact: p<0.05 in 0/3 seeds" in noisy and noisy.rstrip().endswith(
        "not enough evidence   85"
    )
    assert any("Holm-adjusted over 12 comparisons" in line for line in lines[:3])
    header = next(line for line in lines if "more seeds" in line)
    assert "p (t) adj." in header and "correction" not in header  # the title says it, once
    faster = next(line for line in lines if " differs " in line and "train img/s" in line)
    assert "[2.520, 2.654]" in faster and "faster" in faster
    # a 5-point difference at every seed: its t test's p is far below what four decimals show
    differs = next(line for line in lines if " differs " in line and " ACC " in line)
    assert " <0.0001 " in differs and "0.0000" not in result.stdout


def test_compare_correction_none_prints_the_verdicts_of_each_test_alone(tmp_path, pairs_store):
    args = ("compare", "--store", str(pairs_store), "--bootstrap", "50", "--metric", "acc")
    result = medbench(*args, "--correction", "none", home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    noisy = next(line for line in lines if " noisy " in line and " ACC " in line)
    assert noisy.rstrip().endswith("not enough evidence   42")  # as before the correction existed
    assert any("p uncorrected for 3 comparisons" in line for line in lines[:3])  # --metric acc: 3 tests
    bad = medbench(*args, "--correction", "bonferroni", home=tmp_path)
    assert bad.returncode == 2 and "bonferroni" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_compare_takes_every_format(tmp_path, pairs_store, fmt):
    args = ("compare", "--store", str(pairs_store), "--bootstrap", "50", "--format", fmt)
    result = medbench(*args, home=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    if fmt == "json":
        data = json.loads(out)  # "experiment fake in ..." went to stderr
        assert set(data) == {"pairs", "speed"} and len(data["pairs"]) == 12 and len(data["speed"]) == 6
        acc = next(r for r in data["pairs"] if (r["model"], r["metric"]) == ("differs", "ACC"))
        assert acc["verdict"] == "different" and acc["diff_pts"] == pytest.approx(5.0)
        assert (acc["correction"], acc["comparisons"]) == ("holm", 12)
        assert 0 < acc["p_t"] < acc["p_t_adjusted"]  # every digit, not 0.0
        raw = [r["p_tost"] for r in data["pairs"]]
        expected = multipletests(raw, method="holm")[1]
        assert [r["p_tost_adjusted"] for r in data["pairs"]] == pytest.approx(list(expected))
        assert acc["mean_a_pct"] == pytest.approx(85.12) and acc["variant"] is None  # numbers, null
        assert "experiment fake" in result.stderr
    elif fmt == "csv":
        pairs = list(csv.DictReader(io.StringIO(out.split("\n\n")[0].split("\n", 1)[1])))
        assert len(pairs) == 12 and {"verdict", "p_tost", "ci95_pts", "more_seeds"} <= set(pairs[0])
        assert {"p_t_adjusted", "p_tost_adjusted", "correction", "comparisons"} <= set(pairs[0])
        assert out.startswith("# Framework pairs") and "\n# Speed: ratios" in out
        assert "Holm-adjusted over 12 comparisons)" in out.splitlines()[0]
    elif fmt == "markdown":
        assert "| torch - jax | ACC | 4 | 85.12 | 80.12 | 5.00 |" in out and "**Speed:" in out
        assert "| holm |" not in out and "| correction |" not in out  # the title says it, once
    else:
        assert "experiment fake" in out and "Framework pairs" in out


def test_compare_machine_formats_keep_both_tables_when_nothing_pairs(tmp_path, pairs_store):
    args = ("compare", "--store", str(pairs_store), "--bootstrap", "50", "-f", "torch", "--all")
    table = medbench(*args, home=tmp_path)
    assert table.returncode == 0 and "nothing to pair" in table.stdout
    data = json.loads(medbench(*args, "--format", "json", home=tmp_path).stdout)
    assert data == {"pairs": [], "speed": []}
