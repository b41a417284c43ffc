"""Trajectory agreement (issue 11, item 3): steps within 1e-4, first step past 1e-2, pairing, the figure."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medbench.report import trajectory, write_report
from medbench.report.trajectory import compare, pairwise, relative_difference
from medbench.results import ResultsStore

from .conftest import environment, metrics, official, run_config, timings


def test_compare_counts_leading_steps_within_and_the_first_step_past():
    a = np.full(10, 0.5)
    b = a * (1 + np.array([0, 1e-6, 5e-5, 2e-4, 1e-5, 1e-3, 3e-2, 1e-5, 0.2, 0]))
    agreement = compare(a, b)
    assert agreement.steps == 10
    assert agreement.steps_within == 3  # steps 1-3 within 1e-4; step 4 is out (a later return does not count)
    assert agreement.first_past == 7  # 1-based
    assert agreement.max_relative == pytest.approx(0.2 / 1.2)
    same = compare(a, a)
    assert (same.steps_within, same.first_past, same.max_relative) == (10, None, 0.0)


def test_relative_difference_is_symmetric_and_handles_zero_and_nan():
    rel = relative_difference([1.0, 0.0, np.nan, 2.0], [1.1, 0.0, 1.0, 1.0, 5.0])
    assert len(rel) == 4  # the common length
    assert rel[0] == pytest.approx(0.1 / 1.1) and rel[1] == 0.0 and np.isinf(rel[2]) and rel[3] == 0.5
    np.testing.assert_array_equal(rel, relative_difference([1.1, 0.0, 1.0, 1.0], [1.0, 0.0, np.nan, 2.0]))


def _store(tmp_path, trajectories: dict[tuple[str, int], list[float]]) -> ResultsStore:
    store = ResultsStore(tmp_path / "runs.sqlite")
    for (framework, seed), losses in trajectories.items():
        run = store.start_run(
            kind="train",
            config=run_config(framework, 28, seed),
            framework=framework,
            model="resnet18",
            dataset="pathmnist",
            size=28,
            seed=seed,
            experiment="demo",
            dataset_provenance=official("pathmnist", 28),
            environment=environment(framework),
        )
        store.finish_run(
            run, metrics={**metrics(0.9, seed), "trajectory": losses}, timings=timings(framework, seed)
        )
    return store


def _losses(drift: float, n: int = 50) -> list[float]:
    """A decreasing loss, off by ``drift`` x 2^step relative (it doubles each step, as rounding drift does)."""
    base = 1.0 / np.arange(1, n + 1)
    return (base * (1 + drift * 2.0 ** np.arange(n))).tolist()


def test_pairs_share_seed_and_config_and_come_from_the_store(tmp_path):
    store = _store(
        tmp_path,
        {
            ("torch", 0): _losses(0.0),
            ("jax", 0): _losses(1e-9),
            ("keras", 0): _losses(1e-7),
            ("torch", 1): _losses(0.0),
            ("jax", 1): _losses(0.0),
        },
    )
    pairs = pairwise(store.list_runs())
    assert [(p.frameworks, p.seed) for p in pairs] == [
        (("jax", "keras"), 0),
        (("jax", "torch"), 0),
        (("keras", "torch"), 0),
        (("jax", "torch"), 1),
    ]
    by = {(p.frameworks, p.seed): p.agreement for p in pairs}
    # 1e-9 x 2^k > 1e-4 first at k = 17 (0-based), > 1e-2 first at k = 24
    assert by[(("jax", "torch"), 0)].steps_within == 17 and by[(("jax", "torch"), 0)].first_past == 25
    assert by[(("keras", "torch"), 0)].steps_within == 10 and by[(("keras", "torch"), 0)].first_past == 18
    assert by[(("jax", "torch"), 1)].steps_within == 50 and by[(("jax", "torch"), 1)].first_past is None
    rows = trajectory.table(pairs)
    assert rows[1]["pair"] == "jax/torch" and rows[1]["steps_within_1e-4"] == 17


def test_runs_of_another_config_or_without_a_trajectory_are_not_paired(tmp_path):
    store = _store(tmp_path, {("torch", 0): _losses(0.0), ("jax", 0): []})
    other = store.start_run(
        kind="train",
        config={**run_config("keras", 28, 0), "recipe": {"epochs": 7}},
        framework="keras",
        model="resnet18",
        dataset="pathmnist",
        size=28,
        seed=0,
    )
    store.finish_run(other, metrics={"trajectory": _losses(0.0)})
    assert pairwise(store.list_runs()) == []


def test_the_plot_is_a_png_and_the_report_shows_it_with_the_numbers(tmp_path):
    store = _store(tmp_path, {("torch", 0): _losses(0.0), ("jax", 0): _losses(1e-9)})
    png = trajectory.plot(pairwise(store.list_runs()), title="t")
    assert Image.open(io.BytesIO(png)).format == "PNG"
    files = write_report(store, tmp_path / "out")
    html = files.html.read_text(encoding="utf-8")
    assert "Loss agreement between frameworks" in html
    assert "jax vs torch, seed 0: within 1e-4 for 17 of 50 steps, first past 1e-2 at step 25" in html
    # without trajectories (runs stored before they were recorded) there is no such figure
    bare = ResultsStore(tmp_path / "bare.sqlite")
    for framework in ("torch", "jax"):
        run = bare.start_run(
            kind="train",
            config=run_config(framework, 28, 0),
            framework=framework,
            model="resnet18",
            dataset="pathmnist",
            size=28,
            seed=0,
            dataset_provenance=official("pathmnist", 28),
        )
        bare.finish_run(run, metrics=metrics(0.9, 0), timings=timings(framework, 0))
    html = write_report(bare, tmp_path / "bare").html.read_text(encoding="utf-8")
    assert "Loss agreement between frameworks" not in html
