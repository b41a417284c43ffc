"""How the report names a recipe and a variant (report.recipes)."""

from __future__ import annotations

import pytest

from medbench.report.aggregate import compare
from medbench.report.recipes import recipe_summary, variant_tag
from medbench.results import ResultsStore

from .conftest import metrics, official, run_config


def test_the_recipe_summary_names_epochs_batch_and_optimizer():
    assert "3 epochs, batch 128, adam lr 0.001" in recipe_summary(run_config("torch", 28, 0))


def _store_variants(store: ResultsStore, variants: list[tuple[str | None, float]]) -> None:
    for variant, lr in variants:
        config = run_config("torch", 28, 0)
        config["recipe"]["optimizer"]["lr"] = lr
        if variant is not None:
            config["tags"] = {"variant": variant}
        run_id = store.start_run(
            kind="train",
            config=config,
            framework="torch",
            model="resnet18",
            dataset="pathmnist",
            size=28,
            seed=0,
            dataset_provenance=official("pathmnist", 28),
        )
        store.finish_run(run_id, metrics=metrics(0.9, 0))


@pytest.mark.parametrize(
    ("variants", "labels"),
    [
        # distinct names: the name is the label, the differing fields are kept as its settings
        (
            [("low_lr", 0.001), ("high_lr", 0.1)],
            [("high_lr", "recipe.optimizer.lr=0.1"), ("low_lr", "recipe.optimizer.lr=0.001")],
        ),
        # one named variant alone still says which it is; "default" (no [[variants]]) says nothing
        ([("linear_probe", 0.001)], [("linear_probe", "")]),
        ([("default", 0.001)], [("", "")]),
        # a run outside any experiment beside a named variant: told apart, and no "tags={}" field
        (
            [(None, 0.001), ("probe", 0.1)],
            [("", "recipe.optimizer.lr=0.001"), ("probe", "recipe.optimizer.lr=0.1")],
        ),
        # one name on two configs (two experiments reusing it): the name alone would read alike
        (
            [("probe", 0.001), ("probe", 0.1)],
            [("probe, recipe.optimizer.lr=0.001", ""), ("probe, recipe.optimizer.lr=0.1", "")],
        ),
    ],
)
def test_variants_are_labelled_by_their_experiment_name(tmp_path, variants, labels):
    store = ResultsStore(tmp_path / "v.sqlite")
    _store_variants(store, variants)
    found = compare(store.list_runs())
    assert sorted((c.variant_label, c.variant_settings) for c in found) == labels


def test_variant_tag_names_the_finetuning_configuration_then_the_variant():
    assert variant_tag({"tags": {"finetune": "linear_probe", "variant": "default"}}) == "linear_probe"
    assert variant_tag({"tags": {"finetune": "gradual", "variant": "mlp_head"}}) == "gradual mlp_head"
    assert variant_tag({"tags": {"variant": "default"}}) == ""
    assert variant_tag({}) == ""
