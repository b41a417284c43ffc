"""Verdicts on fake runs that differ, that do not, and that are too noisy; ``medbench compare`` end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from medbench.stats.pairs import compare_frameworks
from medbench.stats.predictions import PREDICTIONS_FILE
from medbench.stats.rows import pair_rows, speed_rows
from tests.stats.fakes import build_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("fake-runs"))


@pytest.fixture(scope="module")
def pairs(store):
    found = compare_frameworks(store.list_runs(), n_boot=200)
    return {p.comparison.key.model: p for p in found}


def test_runs_pair_by_seed_within_their_comparison(pairs):
    assert set(pairs) == {"differs", "same", "noisy"}
    assert pairs["differs"].seeds == [0, 1, 2, 3] and (pairs["differs"].a, pairs["differs"].b) == (
        "torch",
        "jax",
    )
    assert pairs["same"].seeds == [0, 1, 2, 3, 4]


def test_runs_that_differ_are_different_on_seeds_and_on_images(pairs):
    acc = pairs["differs"].metric("acc")
    assert acc.seeds.verdict == "different"
    assert acc.seeds.mean == pytest.approx(0.05) and acc.seeds.ci_low > 0.04
    assert acc.image_method == "McNemar exact" and acc.image_significant(0.05) == 4
    assert pairs["differs"].speed["train img/s"].verdict == "faster"
    assert pairs["differs"].speed["s/epoch"].verdict == "faster"  # fewer seconds: torch is the faster


def test_runs_that_do_not_differ_are_equivalent(pairs):
    same = pairs["same"]
    for name in ("acc", "balanced_acc", "macro_f1", "auc"):
        m = same.metric(name)
        assert m is not None and m.seeds.verdict == "equivalent", (name, m.seeds)
    acc = same.metric("acc")
    assert acc.image_significant(0.05) == 0 and acc.image_tests[0][1].p_value == 1.0  # one discordant image
    assert same.metric("auc").image_method == "DeLong"
    assert same.speed["train img/s"].verdict == "no clear difference"  # identical timings on both sides


def test_few_noisy_seeds_are_not_enough_evidence_with_more_seeds_named(pairs):
    acc = pairs["noisy"].metric("acc")
    assert acc.seeds.verdict == "not enough evidence"
    assert acc.seeds.more_seeds is not None and acc.seeds.more_seeds > 0


def test_rows_are_plain_data(pairs):
    columns, rows = pair_rows(list(pairs.values()))
    assert {r["verdict"] for r in rows} == {"different", "equivalent", "not enough evidence"}
    json.dumps(rows)  # plain values only
    assert all(set(r) == set(columns) for r in rows)
    speed_columns, speed = speed_rows(list(pairs.values()))
    assert any(r["verdict"] == "faster" for r in speed) and all(set(r) == set(speed_columns) for r in speed)


def test_one_call_is_one_family_holm_adjusted_by_default(pairs):
    from statsmodels.stats.multitest import multipletests

    family = [m.seeds for p in pairs.values() for m in p.metrics]
    assert len(family) == 12 and {(s.correction, s.comparisons) for s in family} == {("holm", 12)}
    for raw in ("p_difference", "p_equivalence"):  # each test its own family of 12
        expected = multipletests([getattr(s, raw) for s in family], method="holm")[1]
        assert [getattr(s, f"{raw}_adjusted") for s in family] == pytest.approx(list(expected))
    assert pair_rows(list(pairs.values()))[1][0]["comparisons"] == 12


def test_correction_none_reproduces_the_verdicts_of_each_test_alone(store, pairs):
    alone = compare_frameworks(store.list_runs(), image_tests=False, correction="none")
    for p in alone:
        for m in p.metrics:
            s, holm = m.seeds, pairs[p.comparison.key.model].metric(m.metric).seeds
            assert (s.p_difference_adjusted, s.p_equivalence_adjusted) == (s.p_difference, s.p_equivalence)
            expected = (
                "equivalent" if s.p_equivalence < 0.05 else "different" if s.p_difference < 0.05 else None
            )
            assert s.verdict == (expected or "not enough evidence"), (p.comparison.key.model, m.metric)
            assert (s.p_difference, s.p_equivalence) == (holm.p_difference, holm.p_equivalence)
    noisy = next(p for p in alone if p.comparison.key.model == "noisy").metric("acc").seeds
    assert noisy.more_seeds == 42  # what `medbench compare` printed before the correction existed
    assert pairs["noisy"].metric("acc").seeds.more_seeds > 42  # sized for alpha / 12 under Holm


def test_the_metrics_asked_for_alone_make_the_family(store):
    found = compare_frameworks(store.list_runs(), image_tests=False, metrics=("acc",))
    assert [m.metric for p in found for m in p.metrics] == ["acc"] * 3
    assert {m.seeds.comparisons for p in found for m in p.metrics} == {3}


def test_rows_keep_p_unrounded_for_scripts(pairs):
    _, rows = pair_rows(list(pairs.values()))
    for p in pairs.values():
        for m in p.metrics:
            row = next(r for r in rows if r["model"] == p.comparison.key.model and r["metric"] == m.label)
            assert row["p (t)"] == m.seeds.p_difference and row["p (TOST)"] == m.seeds.p_equivalence
            assert row["p (t) adj."] == m.seeds.p_difference_adjusted
            assert row["p (TOST) adj."] == m.seeds.p_equivalence_adjusted
            assert row["image p (median)"] == m.image_p_median and row["correction"] == "holm"
    same = next(r for r in rows if r["model"] == "same" and r["metric"] == "ACC")
    assert 0 < same["p (TOST)"] < 0.0001  # rounded to four decimals this was 0.0


def test_a_missing_predictions_file_is_said_not_fatal(store, tmp_path):
    runs = store.list_runs(model="differs")
    victim = next(r for r in runs if r.framework == "jax" and r.seed == 0)
    path = f"{victim.checkpoint_path}/{PREDICTIONS_FILE}"
    os.rename(path, path + ".away")
    try:
        (p,) = compare_frameworks(runs, n_boot=50)
    finally:
        os.rename(path + ".away", path)
    acc = p.metric("acc")
    assert acc.seeds.verdict == "different" and len(acc.image_tests) == 3
    assert "seed 0: predictions file missing" in acc.image_note


def _compare(store, *args):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "medbench.cli",
            "compare",
            "--store",
            str(store.path),
            "--bootstrap",
            "100",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},
    )


def test_medbench_compare_through_the_cli(store):
    result = _compare(store)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "experiment fake" in out  # the default: the latest experiment
    lines = {
        model: [line for line in out.splitlines() if f" {model} " in line]
        for model in ("differs", "same", "noisy")
    }
    assert all("different" in line for line in lines["differs"] if "ACC " in line)
    assert any("equivalent" in line for line in lines["same"])
    assert any("not enough evidence" in line for line in lines["noisy"])
    assert "faster" in out
    bad = _compare(store, "--margin", "0")
    assert bad.returncode == 2 and "--margin" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
def test_medbench_compare_applies_the_margin_and_filters(store):
    # a wide margin makes the 5-point difference "equivalent"
    wide = _compare(store, "--margin", "10", "--model", "differs")
    assert wide.returncode == 0, wide.stderr[-2000:]
    table = wide.stdout.split("Speed")[0]
    assert "equivalent" in table and "different" not in table and " same " not in table
    only_auc = _compare(store, "--metric", "auc")
    assert only_auc.returncode == 0 and " AUC " in only_auc.stdout and " ACC " not in only_auc.stdout
    unknown = _compare(store, "--metric", "f2")
    assert unknown.returncode == 2 and "f2" in unknown.stderr


def test_the_latest_run_of_a_seed_counts(store):
    from medbench.stats.pairs import paired_runs

    runs = store.list_runs(model="same")
    torch = [r for r in runs if r.framework == "torch"]
    jax = [r for r in runs if r.framework == "jax" and r.seed != 4]
    rerun = torch[0].__class__(**{**torch[0].to_dict(), "run_id": "rerun", "created_at": "9999"})
    pairs = paired_runs([*torch, rerun], jax)
    assert [s for s, _, _ in pairs] == [0, 1, 2, 3]  # seed 4 has no jax run
    assert pairs[0][1].run_id == "rerun"


def test_the_tables_medbench_run_prints(store):
    from medbench.commands.compare import verdict_tables

    pairs_table, speed_table = verdict_tables(store.list_runs(), margin=1.0, alpha=0.05, n_boot=50)
    assert len(pairs_table.rows) == 12 and len(speed_table.rows) == 6  # 3 comparisons x 4 metrics / 2 timings
    alone = [r for r in store.list_runs() if r.framework == "torch"]
    assert verdict_tables(alone, margin=1.0, alpha=0.05, n_boot=50) == []  # nothing to pair: nothing printed
