"""What the report says about a `medbench run quick` store: header, environment, published figures, the
glance table's AUC and inference speed, one unit, the majority-class baseline. One test per defect."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from medbench.report import plots
from medbench.report.build import build_document
from medbench.report.glance import header_facts
from medbench.report.references import load_references
from medbench.results import ResultsStore

from .conftest import BLOOD_TEST_SUPPORT, environment, official, quick_metrics, run_config, timings


@pytest.fixture(scope="module")
def quick_runs(quick_store_path):
    return ResultsStore(quick_store_path).list_runs()


@pytest.fixture(scope="module")
def document(quick_runs):
    return build_document(quick_runs, store_path="store.sqlite")


def table(document, name: str):
    return next(t for t in document.tables() if t.name == name)


def texts(t) -> list[list[str]]:
    return [[c.text for c in row.cells] for row in t.rows]


def facts(runs) -> dict[str, str]:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return dict(header_facts(runs, store_path="s", filters="all runs", generated_at=now))


def test_the_header_lists_frameworks_not_numpy_and_its_run_counts_add_up(quick_runs):
    header = facts(quick_runs)
    assert header["Frameworks"] == "torch, jax, keras"  # the machine-peak row's "numpy" is no framework
    assert header["Inference engines"] == "torch-eager, jax-jit, keras-tf-xla"
    runs = header["Runs"]
    total, rest = runs.split(" = ", 1)
    parts = [int(part.split()[0]) for part in rest.split(" + ")]
    assert int(total) == len(quick_runs) == 7 and sum(parts) == 7, runs
    assert "1 machine peak" in runs and "3 training (3 completed)" in runs


def test_the_environment_has_one_row_per_framework_stack_and_no_unknowns(document):
    stacks = table(document, "stacks")
    rows = texts(stacks)
    column = stacks.headers.index
    # training and the benchmark engine used the same stack: one row each, saying what used it
    assert [r[0] for r in rows] == ["torch", "jax", "keras"]
    assert rows[0][column("Used for")] == "training, torch-eager"
    assert rows[2][column("Used for")] == "training, keras-tf-xla"
    assert not any(cell == "?" for r in rows for cell in r)


def test_a_figure_marked_unverified_never_sits_beside_a_verified_status(document):
    refs = [row for t in document.tables() for row in t.rows if row.kind == "ref"]
    assert refs
    for row in refs:
        cells = [c.text for c in row.cells]
        status = cells[-1]
        if any("(unverified)" in c for c in cells[:-1]):
            assert "unverified" in status, cells
    # BloodMNIST's best v2 ACC (Google AutoML Vision) is verified for its ACC only
    automl = next(row for row in refs if "Google AutoML Vision" in row.cells[0].text)
    assert [c.text for c in automl.cells][-1] == "ACC verified-quoted; ⚠ AUC unverified"
    assert "(unverified)" in automl.cells[4].text and "(unverified)" not in automl.cells[2].text
    assert load_references()  # the packaged table exists


def test_the_glance_table_gives_auc_and_the_fastest_engine(document):
    glance = table(document, "glance")
    column = glance.headers.index
    (row,) = texts(glance)
    assert row[column("torch AUC %")] == "99.30" and row[column("keras AUC %")] == "50.00"
    # bench_metrics: jax-jit's p50 is 0.8 x 2 ms at 28 px, the lowest
    assert row[column("Fastest to predict (batch 1)")] == "jax-jit (1.6 ms)"
    first = glance.headers[:4]
    assert first == ("Dataset", "Size", "Model", "≤ 1.5 pts")  # the verdict before the figures


def test_a_majority_class_model_gets_a_baseline_row_and_a_warning_not_bold(document):
    verdict = table(document, "verdict")
    rows = {row.cells[0].text: row for row in verdict.rows}
    baseline = rows["majority-class baseline"]
    # neutrophil: most frequent training class; 666 of the 3,421 official test images
    assert baseline.kind == "baseline"
    assert baseline.cells[2].text == f"{100 * 666 / sum(BLOOD_TEST_SUPPORT):.1f}" == "19.5"
    assert baseline.cells[4].text == "50.00"
    assert "neutrophil" in baseline.cells[-1].text
    keras = rows["keras"]
    assert keras.cells[0].tone == "bad" and "baseline" in keras.cells[-1].text
    notes = [b.text for s in document.sections for b in _walk(s) if hasattr(b, "tone")]
    assert any("keras" in n and "majority" in n and n.startswith("⚠") for n in notes)


def _walk(block):
    for child in getattr(block, "blocks", ()):
        yield child
        yield from _walk(child)


def _store_with(tmp_path, accs: dict[str, float | None]) -> ResultsStore:
    """One comparison of BloodMNIST simple_cnn runs; None: the majority class for every image."""
    store = ResultsStore(tmp_path / "s.sqlite")
    for framework, acc in accs.items():
        run_id = store.start_run(
            kind="train",
            config=run_config(framework, 28, 0, dataset="bloodmnist"),
            framework=framework,
            model="resnet18",
            dataset="bloodmnist",
            size=28,
            seed=0,
            dataset_provenance=official("bloodmnist", 28),
            environment=environment(framework),
        )
        m = quick_metrics("keras" if acc is None else "torch")
        if acc is not None:
            m["test_acc"] = acc
        store.finish_run(run_id, metrics=m, timings=timings(framework, 0))
    return store


def test_the_majority_class_model_is_not_bolded_as_best(tmp_path):
    # torch collapsed onto the majority class (19.5 %), jax learnt even less: nothing beats the baseline
    store = _store_with(tmp_path, {"torch": None, "jax": 0.15})
    document = build_document(store.list_runs(), store_path="s", references=())
    glance, verdict = table(document, "glance"), table(document, "verdict")
    assert not any(c.tone == "best" for t in (glance, verdict) for row in t.rows for c in row.cells)
    (row,) = glance.rows
    assert row.cells[glance.headers.index("Most accurate")].text == "none beats the baseline"
    assert "⚠ ≤ baseline" in row.cells[glance.headers.index("torch ACC %")].text


def test_a_run_above_the_baseline_is_still_bolded(tmp_path):
    store = _store_with(tmp_path, {"torch": 0.80, "jax": 0.85})
    verdict = table(build_document(store.list_runs(), store_path="s", references=()), "verdict")
    assert [row.cells[0].text for row in verdict.rows if row.cells[0].tone == "best"] == ["jax"]


def test_one_seed_and_one_repeat_captions_say_no_error_bars(document):
    captions = {f.name: f.caption for f in document.figures()}
    assert not any("±1 standard deviation" in c or "bars min–max" in c for c in captions.values())
    assert "one seed each, so no error bars" in captions["bloodmnist-seconds-per-epoch"]
    assert "one repeat, so no bars" in captions["bench-simple-cnn-throughput"]
    assert "bench-simple-cnn-latency-vs-size" not in captions  # one size: no line to draw


def test_a_single_epoch_draws_no_training_curve(tmp_path):
    store = ResultsStore(tmp_path / "one-epoch.sqlite")
    run_id = store.start_run(
        kind="train",
        config=run_config("torch", 28, 0),
        framework="torch",
        model="resnet18",
        dataset="pathmnist",
        size=28,
        seed=0,
    )
    m = quick_metrics("torch")
    m["history"] = m["history"][:1]
    store.finish_run(run_id, metrics=m, timings=timings("torch", 0))
    document = build_document(store.list_runs(), store_path="s", references=())
    assert [f.name for f in document.figures()] == ["pathmnist-28-px-resnet18-confusion"]


def test_validation_auc_is_plotted_in_percent(quick_runs, monkeypatch):
    seen = []
    monkeypatch.setattr(plots, "training_curves", lambda curves, **kw: seen.append((curves, kw)) or b"")
    build_document(quick_runs, store_path="s", references=())
    curves, kw = next((c, kw) for c, kw in seen if "AUC" in kw["ylabel"])
    values = [v for seeds in curves.values() for seed in seeds for _, v in seed]
    assert "%" in kw["ylabel"] and min(values) > 50  # percent, like every table
