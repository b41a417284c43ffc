"""A tuned run is a row of its own beside its framework out of the box, in the same comparison."""

from __future__ import annotations

from medbench.config import set_dotted
from medbench.report.aggregate import compare
from medbench.report.runtime_variant import framework_label, variant_label
from medbench.results import ResultsStore
from tests.report.conftest import environment, metrics, run_config, timings


def test_labels_name_only_what_differs_from_out_of_the_box():
    assert variant_label("torch", {"compile": None, "settings": {}, "channels_last": True}) == "torch"
    assert variant_label("torch", None) == "torch"  # a row stored before runtime had these fields
    assert variant_label("torch", {"compile": True}) == "torch (tuned: compile)"
    assert variant_label("jax", {"compile": True}) == "jax"  # always jitted: nothing was tuned
    tuned = {"compile": True, "settings": {"tf_onednn": False}}
    assert variant_label("keras", tuned) == "keras (tuned: compile, tf_onednn=off)"
    assert variant_label("keras", {"settings": {"tf_onednn": True}}) == "keras"  # the default, spelled out


def _add(store, framework, seed, *, runtime=None, acc=0.9):
    config = run_config(framework, 28, seed)
    for field, value in (runtime or {}).items():
        config = set_dotted(config, f"runtime.{field}", value)
    run_id = store.start_run(
        kind="train", config=config, framework=framework, model="resnet18", dataset="pathmnist", size=28,
        seed=seed, experiment="tuning", environment=environment(framework),
    )  # fmt: skip
    store.finish_run(run_id, metrics=metrics(acc, seed), timings=timings(framework, seed))
    return store.get_run(run_id)


def test_a_comparison_shows_a_framework_out_of_the_box_and_tuned_as_two_rows(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    for seed in (0, 1):
        _add(store, "torch", seed)
        tuned = _add(store, "torch", seed, runtime={"compile": True, "settings": {"onednn": False}}, acc=0.91)
        _add(store, "jax", seed, runtime={"compile": True})
    assert framework_label(tuned) == "torch (tuned: compile, onednn=off)"
    (comparison,) = compare(store.list_runs())
    rows = {f.framework: f for f in comparison.frameworks}
    assert set(rows) == {"torch", "torch (tuned: compile, onednn=off)", "jax"}
    assert all(len(f.runs) == 2 for f in rows.values())
    assert rows["torch (tuned: compile, onednn=off)"].test_acc.mean > rows["torch"].test_acc.mean
