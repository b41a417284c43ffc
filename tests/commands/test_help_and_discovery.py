"""Help a new user can act on, and the commands that say what there is: through the real CLI, piped."""

from __future__ import annotations

import json
import re

import pytest
import tomllib

from medbench.orchestration.experiments import REFERENCE, shipped_experiments
from tests.commands.helpers import medbench

COMMANDS = [
    ["datasets"],
    ["info"],
    ["download"],
    ["verify"],
    ["models"],
    ["train"],
    ["evaluate"],
    ["predict"],
    ["results"],
    ["compare"],
    ["bench"],
    ["bench-report"],
    ["run"],
    ["report"],
    ["experiments"],
    ["experiments", "show"],
    ["finetune-presets"],
    ["weights", "list"],
    ["weights", "download"],
    ["weights", "verify"],
    ["tune"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_examples_and_no_bool_metavar(command, tmp_path):
    result = medbench(*command, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    examples = result.stdout.split("Examples:", 1)
    assert len(examples) == 2, f"{command}: no examples"
    lines = [line for line in examples[1].splitlines() if line.strip().startswith("medbench ")]
    assert len(lines) >= 2, lines
    assert "<bool>" not in result.stdout


def test_train_help_gives_defaults_and_marks_the_dataset_required(tmp_path):
    text = re.sub(r"\s+", " ", medbench("train", "--help", home=tmp_path).stdout.replace("│", " "))
    for fragment in (
        "keras-jax or keras-torch. Default: torch.",
        "Default: simple_cnn.",
        "Required, unless --config",
        "Training epochs. Default: 100 (official).",
        "Training batch size. Default: 128.",
        "Learning rate. Default: 0.001.",
        "Weight decay. Default: 0.",
        "Label smoothing of the loss. Default: 0.",
        "--no-augment",
        "--no-pretrained",
        "MEDBENCH_HOME",
    ):
        assert fragment in text, fragment


def test_train_without_a_dataset_stops_instead_of_picking_pathmnist(tmp_path):
    result = medbench("train", "-f", "torch", "-e", "1", home=tmp_path)
    assert result.returncode == 2
    assert "No dataset given" in result.stderr and "-d/--dataset" in result.stderr
    assert not (tmp_path / "results.sqlite").exists()


@pytest.mark.parametrize(
    "command", [["results"], ["compare"], ["run"], ["bench"], ["bench-report"], ["report"], ["train"]]
)
def test_store_help_names_medbench_home(command, tmp_path):
    assert "MEDBENCH_HOME" in medbench(*command, "--help", home=tmp_path).stdout


NOT_TABLES = (["download"], ["report"], ["experiments", "show"], ["weights", "download"])  # files, paths
TABLE_COMMANDS = [c for c in COMMANDS if c not in NOT_TABLES]


@pytest.mark.parametrize("command", TABLE_COMMANDS, ids=" ".join)
def test_every_table_command_takes_format(command, tmp_path):
    text = medbench(*command, "--help", home=tmp_path).stdout
    assert "--format" in text and "table|csv|json|markdown" in text


def test_switches_show_both_forms(tmp_path):
    text = medbench("datasets", "--help", home=tmp_path).stdout
    assert "--verify" in text and "--no-verify" in text


def test_version(tmp_path):
    from medbench import __version__

    result = medbench("--version", home=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() == f"medbench {__version__}"


def test_experiments_lists_every_shipped_one_with_trials_and_a_rough_time(tmp_path):
    rows = {
        r["name"]: r for r in json.loads(medbench("experiments", "--format", "json", home=tmp_path).stdout)
    }
    assert set(rows) == set(shipped_experiments()) and "reference" not in rows
    quick = rows["quick"]
    assert quick["trials"] == 3 and quick["frameworks"] == "torch, jax, keras" and quick["bench"] == "yes"
    assert 30 < quick["rough_seconds"] < 3600  # minutes, not days, for the quick comparison
    assert rows["pathmnist_frameworks"]["rough_seconds"] > 24 * 3600  # 100 epochs of PathMNIST: days
    table = medbench("experiments", home=tmp_path).stdout
    assert "bloodmnist_sizes" in table and "…" not in table


def test_experiments_show_prints_the_file_itself(tmp_path):
    quick = medbench("experiments", "show", "quick", home=tmp_path)
    assert quick.stdout == shipped_experiments()["quick"].read_text()
    unknown = medbench("experiments", "show", "quik", home=tmp_path)
    assert unknown.returncode == 2 and "quick" in unknown.stderr


def _fields(model) -> set[str]:
    return set(model.model_fields)


def test_the_reference_file_documents_every_field_and_runs(tmp_path):
    from medbench.config import (
        AugmentConfig,
        DataConfig,
        FinetuneConfig,
        OptimizerConfig,
        RecipeConfig,
        RunConfig,
        RuntimeConfig,
        ScheduleConfig,
    )
    from medbench.orchestration.experiments import BenchMeasure, ExperimentSpec, Grid, Measure, Resources

    text = medbench("experiments", "show", "reference", home=tmp_path).stdout
    assert text == REFERENCE.read_text()
    tomllib.loads(text)  # valid TOML
    documented = set(re.findall(r"^#?\s*([a-z_]+) =", text, flags=re.M))
    grid_set = {"framework", "model", "seed", "data", "recipe", "finetune", "runtime", "dataset", "size"}
    models = (ExperimentSpec, Grid, Measure, BenchMeasure, Resources, RunConfig, DataConfig, AugmentConfig)
    models += (RecipeConfig, OptimizerConfig, ScheduleConfig, FinetuneConfig, RuntimeConfig)
    missing = set().union(*(_fields(m) for m in models)) - documented - grid_set - {"grid", "base", "measure"}
    missing -= {"variants", "resources", "augment", "optimizer", "schedule", "bench", "data_files"}
    assert not missing, f"fields without an entry in the reference: {sorted(missing)}"
    assert "--set base.recipe.epochs=2" in text  # the override path, spelled out
    dry = medbench("run", "reference", "--dry-run", "--format", "json", home=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert len(json.loads(dry.stdout)) == 3
