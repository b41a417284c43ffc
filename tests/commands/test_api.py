"""The Python API: importable from ``medbench`` without any framework, and the same path the CLI takes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import medbench
from medbench.errors import ConfigError
from tests.commands.helpers import populated_store


def test_import_medbench_loads_no_framework_and_no_api_until_used():
    code = (
        "import sys, json, medbench\n"
        "before = sorted(m for m in ('torch', 'jax', 'tensorflow', 'keras', 'medbench.api', 'pydantic') "
        "if m in sys.modules)\n"
        "medbench.load_results\n"
        "after = sorted(m for m in ('torch', 'jax', 'tensorflow', 'keras') if m in sys.modules)\n"
        "print(json.dumps([before, after, 'medbench.api' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    before, after, api_loaded = json.loads(out)
    assert before == [] and after == [] and api_loaded


def test_the_api_is_listed_and_documented():
    for name in (
        "train",
        "resume",
        "evaluate",
        "run_experiment",
        "plan_experiment",
        "load_results",
        "make_config",
    ):
        assert name in dir(medbench) and getattr(medbench, name).__doc__
    with pytest.raises(AttributeError):
        medbench.no_such_function  # noqa: B018


def test_make_config_takes_shortcuts_and_dotted_overrides():
    config = medbench.make_config(
        framework="jax", dataset="BloodMNIST", epochs=3, overrides={"recipe.optimizer.name": "adamw"}
    )
    assert (config.framework, config.data.dataset, config.recipe.epochs) == ("jax", "bloodmnist", 3)
    assert config.recipe.optimizer.name == "adamw" and config.recipe.batch_size == 128  # the official rest
    with pytest.raises(ConfigError, match="no argument 'epoch'"):
        medbench.make_config(epoch=3)
    with pytest.raises(ConfigError, match="recipe.epochs"):
        medbench.make_config(dataset="bloodmnist", epochs=0)


def test_load_results_filters_like_the_results_command(tmp_path):
    store = populated_store(tmp_path / "results.sqlite")
    runs = medbench.load_results(store, experiment="demo", framework="jax", status="completed")
    assert runs and {r.framework for r in runs} == {"jax"} and all(r.status == "completed" for r in runs)
    assert len(medbench.load_results(store, limit=2)) == 2


def test_plan_experiment_expands_and_finds_what_is_done(tmp_path):
    plan = medbench.plan_experiment("quick", overrides={"base.recipe.epochs": 1}, store=tmp_path / "r.sqlite")
    assert [t.config.framework for t in plan.trials] == ["torch", "jax", "keras"]
    assert all(t.config.recipe.epochs == 1 for t in plan.trials) and plan.skipped == {}


def test_evaluate_refuses_an_unknown_split_before_loading_anything(tmp_path):
    with pytest.raises(ConfigError, match="Unknown split 'tset'"):
        medbench.evaluate(tmp_path / "no-such-run", split="tset")
