"""The report's "where the time goes" section, from rows shaped as ``medbench.training.profiling`` writes them."""

from __future__ import annotations

import pytest

from medbench.config import DataConfig, RecipeConfig, RunConfig, RuntimeConfig
from medbench.report import write_report
from medbench.report.profiles import framework_label, profile_section
from medbench.results import ResultsStore


def breakdown(step: float, *, batch: int = 128, **parts: float) -> dict:
    values = {"data_ms": 1.0, "host_to_device_ms": 0.5, "forward_ms": step / 4, "backward_ms": step / 2}
    values.update(parts)
    values.setdefault("optimizer_ms", step / 8)
    values["other_ms"] = step - sum(v for k, v in values.items() if k != "data_ms")
    return {"step_ms": step, **values, "repeats": 3, "method": "timed its own way", "batch_size": batch}


def top(framework: str, n: int = 12) -> dict:
    ops = [
        {
            "name": f"{framework}-op{i}",
            "kind": f"conv{i}",
            "detail": "backward" if i % 2 else "",
            "ms_per_step": 100.0 - i,
            "calls_per_step": 1,
            "share": (100.0 - i) / 2000,
        }
        for i in range(n)
    ]
    return {"framework": framework, "profiler": f"{framework} profiler", "steps": 3, "total_ms": 2000.0,
            "operations": ops}  # fmt: skip


def add(store, framework: str, seed: int, timings: dict, *, runtime: RuntimeConfig | None = None) -> None:
    config = RunConfig(
        framework=framework,
        model="resnet18",
        data=DataConfig(dataset="pathmnist", size=64),
        recipe=RecipeConfig(epochs=1),
        runtime=runtime or RuntimeConfig(),
        seed=seed,
    )
    run_id = store.start_run(
        kind="train", config=config.to_dict(), framework=framework, model="resnet18", dataset="pathmnist",
        size=64, seed=seed,
    )  # fmt: skip
    store.finish_run(run_id, metrics={"test_acc": 0.9, "test_auc": 0.95}, timings=timings)


@pytest.fixture
def store(tmp_path):
    store = ResultsStore(tmp_path / "results.sqlite")
    add(store, "torch", 0, {"step_breakdown": breakdown(400.0)})
    add(store, "torch", 1, {"step_breakdown": breakdown(600.0), "top_operations": top("torch")})
    add(store, "jax", 0, {"step_breakdown": breakdown(2000.0), "top_operations": top("jax", n=4)})
    add(store, "jax", 1, {"step_breakdown": breakdown(250.0)}, runtime=RuntimeConfig(threads=1))
    failed = {"framework": "keras", "failed": "RuntimeError: no profiler", "after_step": 3}
    add(store, "keras", 0, {"step_breakdown": {"failed": "ValueError: boom", "batch_size": 128},
                            "top_operations": failed})  # fmt: skip
    return store


def test_the_breakdown_pools_seeds_per_framework_setting_and_shows_shares(store):
    section = profile_section(store.list_runs())
    table = next(b for b in section.blocks if getattr(b, "name", "") == "step breakdown")
    rows = {row.cells[3].text: row.cells for row in table.rows}
    assert set(rows) == {"torch", "jax", "jax (threads=1)", "keras"}
    torch = rows["torch"]
    assert torch[4].text == "500.0" and torch[4].hint == "2 run(s)"  # the median of 400 and 600
    assert torch[7].text == "125.0 (25%)"  # forward: the median of 100 and 150, a quarter of the step
    assert torch[3].hint == "timed its own way"
    assert rows["keras"][4].text.startswith("failed: ValueError: boom") and rows["keras"][4].tone == "bad"
    notes = [b.text for b in section.blocks if getattr(b, "tone", "") == "muted"]
    assert "How torch was timed: timed its own way." in notes  # the hint, spelt out for Markdown


def test_the_top_operations_stand_side_by_side_rank_by_rank(store):
    section = profile_section(store.list_runs())
    table = next(b for b in section.blocks if getattr(b, "name", "") == "top operations")
    assert table.headers == ("#", "jax: jax profiler", "keras", "torch: torch profiler")
    ranked, total = table.rows[:-1], table.rows[-1]
    assert len(ranked) == 10  # the ten costliest, though torch listed twelve
    assert ranked[0].cells[3].text == "conv0: 100.0 ms (5%)" and ranked[1].cells[3].text.endswith(
        ", backward"
    )
    assert ranked[4].cells[1].text == ""  # jax listed four
    assert (
        ranked[0].cells[2].text.startswith("profile failed: RuntimeError") and ranked[1].cells[2].text == ""
    )
    assert total.cells[3].text == "2,000.0 ms per step"


def test_the_section_is_in_both_renderings_and_absent_without_breakdowns(store, tmp_path):
    files = write_report(store, tmp_path / "report")
    for text in (files.html.read_text(), files.markdown.read_text()):
        assert "Where the time goes" in text and "conv0: 100.0 ms (5%)" in text
    plain = ResultsStore(tmp_path / "plain.sqlite")
    add(plain, "torch", 0, {"train_s_per_epoch": 1.0})
    assert profile_section(plain.list_runs()) is None


def test_a_framework_is_labelled_with_the_runtime_settings_it_changed(store):
    labels = sorted(framework_label(r) for r in store.list_runs())
    assert labels == ["jax", "jax (threads=1)", "keras", "torch", "torch"]
