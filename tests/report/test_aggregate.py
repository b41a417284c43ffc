"""Grouping and pooling over seeds, checked against numbers worked out by hand from the fixture's rows."""

from __future__ import annotations

import math

import pytest

from medbench.report.aggregate import compare, unfinished_runs
from medbench.report.environments import group_environments
from medbench.report.grouping import DataSource, comparable_config
from medbench.report.pooling import Stat
from medbench.report.recipes import recipe_summary
from medbench.results import ResultsStore

from .conftest import environment, metrics, official, run_config, timings


@pytest.fixture(scope="module")
def runs(store_path):
    return ResultsStore(store_path).list_runs()


@pytest.fixture(scope="module")
def comparisons(runs):
    return {(c.key.dataset, c.key.size): c for c in compare(runs)}


def test_stat_is_mean_and_sample_std_of_the_finite_values():
    stat = Stat.of([0.90, 0.92, None, float("nan"), "x"])
    assert stat.n == 2 and stat.mean == pytest.approx(0.91)
    assert stat.std == pytest.approx(math.sqrt(((0.90 - 0.91) ** 2 + (0.92 - 0.91) ** 2) / 1))
    assert (stat.min, stat.max) == (0.90, 0.92)
    assert Stat.of([0.5]).std is None  # one seed has no spread, rather than a misleading 0
    assert Stat.of([None]) is None


def test_one_comparison_per_dataset_size_and_source(comparisons):
    assert set(comparisons) == {("pathmnist", 28), ("pathmnist", 64), ("bloodmnist", 28)}
    path28 = comparisons[("pathmnist", 28)]
    assert [f.framework for f in path28.frameworks] == ["torch", "jax", "keras"]
    assert all(len(f.runs) == 2 and f.seeds == [0, 1] for f in path28.frameworks)


def test_means_and_spreads_over_seeds_match_hand_computation(comparisons):
    c = comparisons[("pathmnist", 28)]
    torch, jax, keras = (c.result(fw) for fw in ("torch", "jax", "keras"))
    assert torch.test_acc.mean == pytest.approx(0.91) and torch.test_acc.std == pytest.approx(0.0141421356)
    assert jax.test_acc.mean == pytest.approx(0.91) and jax.test_acc.std == pytest.approx(0.0070710678)
    assert keras.test_acc.mean == pytest.approx(0.895)
    assert torch.s_per_epoch.mean == pytest.approx(11.0) and torch.s_per_epoch.std == pytest.approx(
        math.sqrt(2)
    )
    assert torch.images_per_s.mean == pytest.approx((89996 / 10 + 89996 / 12) / 2)
    assert torch.test_auc.mean == pytest.approx(0.95 + 0.91 / 20)


def test_the_1_5_point_criterion_holds_at_its_edge_and_fails_beyond(comparisons):
    at_edge = comparisons[("pathmnist", 28)]
    assert at_edge.acc_spread_points == pytest.approx(1.5)
    assert at_edge.within_criterion is True  # 0.91 - 0.895 is 1.5000000000000013 points in floats
    beyond = comparisons[("pathmnist", 64)]
    assert beyond.acc_spread_points == pytest.approx(3.5) and beyond.within_criterion is False
    single = comparisons[("bloodmnist", 28)]
    assert single.acc_spread_points is None and single.within_criterion is None


def test_the_ci_comes_from_the_seed_with_the_best_validation_auc(comparisons):
    torch = comparisons[("pathmnist", 28)].result("torch")
    assert torch.best_run.seed == 1  # its val AUC is higher, whatever the test set says
    assert (torch.acc_ci.low, torch.acc_ci.high, torch.acc_ci.seed) == pytest.approx((0.91, 0.93, 1))


def test_fastest_and_machines(comparisons):
    c = comparisons[("pathmnist", 28)]
    assert c.fastest.framework == "jax"
    assert c.machines == 1


def test_failed_runs_are_attached_to_their_comparison_and_listed(runs, comparisons):
    failed64 = comparisons[("pathmnist", 64)].failed
    assert [(r.framework, r.seed, r.status) for r in failed64] == [("keras", 2, "failed")]
    interrupted28 = comparisons[("pathmnist", 28)].failed
    assert [(r.framework, r.status) for r in interrupted28] == [("jax", "interrupted")]
    assert {r.status for r in unfinished_runs(runs)} == {"failed", "interrupted"}
    assert len(unfinished_runs(runs)) == 3  # two training runs and the benchmark engine with wrong answers


def test_a_custom_file_is_never_called_official(comparisons):
    source = comparisons[("bloodmnist", 28)].key.source
    assert source.kind == "custom" and not source.is_official
    label = source.label("bloodmnist")
    assert label.startswith("custom file, NOT the official bloodmnist") and "sha256 abababab" in label
    assert DataSource("official").label("bloodmnist") == "official bloodmnist file (MD5 verified)"


def test_comparable_config_ignores_framework_seed_and_threads_only():
    a = run_config("torch", 28, 0)
    b = run_config("keras", 28, 3)
    assert comparable_config(a) == comparable_config(b)
    c = run_config("torch", 28, 0)
    c["recipe"]["epochs"] = 100
    assert comparable_config(a) != comparable_config(c)
    assert "3 epochs, batch 128, adam lr 0.001" in recipe_summary(a)


def test_two_recipes_on_the_same_subject_are_kept_apart_and_labelled(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    for epochs, acc in ((3, 0.80), (100, 0.90)):
        config = run_config("torch", 28, 0)
        config["recipe"]["epochs"] = epochs
        run_id = store.start_run(
            kind="train",
            config=config,
            framework="torch",
            model="resnet18",
            dataset="pathmnist",
            size=28,
            seed=0,
            dataset_provenance=official("pathmnist", 28),
            environment=environment("torch"),
        )
        store.finish_run(run_id, metrics=metrics(acc, 0), timings=timings("torch", 0))
    found = compare(store.list_runs())
    assert sorted(c.variant_label for c in found) == ["recipe.epochs=100", "recipe.epochs=3"]
    assert sorted(c.result("torch").test_acc.mean for c in found) == [0.80, 0.90]


def test_an_upsampled_run_is_its_own_group_labelled_from_to(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    config = run_config("torch", 28, 0)
    config["data"]["resize_to"] = 224
    run_id = store.start_run(
        kind="train",
        config=config,
        framework="torch",
        model="resnet18",
        dataset="pathmnist",
        size=224,  # the store's size column is the side the model saw
        seed=0,
        dataset_provenance=official("pathmnist", 28),
    )
    store.finish_run(run_id, metrics=metrics(0.9, 0))
    (found,) = compare(store.list_runs())
    assert (found.key.size, found.key.input_size, found.key.size_label) == (28, 224, "28→224")


def test_environments_are_grouped_not_dumped(runs):
    machines, stacks = group_environments(runs)
    assert len(machines) == 1 and machines[0].fields["CPU"].startswith("AMD EPYC 7B13")
    assert [g.fields["framework"] for g in stacks] == ["torch", "jax", "keras"]
    assert stacks[1].fields["versions"] == "flax 0.10.2, jax 0.4.35"
    assert stacks[0].fields["threads"] == "2 (+1 inter-op)"


def test_balanced_accuracy_macro_f1_and_class_recall_are_pooled_over_seeds(comparisons):
    torch = comparisons[("pathmnist", 64)].result("torch")  # ACCs 0.93 and 0.94
    assert torch.test_balanced_acc.mean == pytest.approx(0.925) and torch.test_balanced_acc.n == 2
    assert torch.test_macro_f1.mean == pytest.approx(0.915)
    assert torch.test_macro_f1.std == pytest.approx(0.01 / math.sqrt(2))
    recall = torch.class_recall
    assert recall.names[0] == "adipose" and len(recall.recall) == 9 and not recall.multi_label
    # class i: ACC - i points for seed 0, ACC - 2i points for seed 1
    assert (recall.recall[4].min, recall.recall[4].max) == pytest.approx((0.86, 0.89))
    assert recall.support == (900, 800, 700, 600, 500, 400, 300, 200, 100)


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
    from medbench.report.recipes import variant_tag

    assert variant_tag({"tags": {"finetune": "linear_probe", "variant": "default"}}) == "linear_probe"
    assert variant_tag({"tags": {"finetune": "gradual", "variant": "mlp_head"}}) == "gradual mlp_head"
    assert variant_tag({"tags": {"variant": "default"}}) == ""
    assert variant_tag({}) == ""
