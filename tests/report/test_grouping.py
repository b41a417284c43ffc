"""What groups runs into one comparison (report.grouping): the config apart from framework, seed and threads,
the data source, the input size."""

from __future__ import annotations

from medbench.report.aggregate import compare
from medbench.report.grouping import DataSource, comparable_config
from medbench.results import ResultsStore

from .conftest import environment, metrics, official, run_config, timings


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
