"""The report's first screen: the answer in sentences, before any table."""

from __future__ import annotations

import pytest

from medbench.report.build import build_document
from medbench.report.document import Details, Note, Section, Table
from medbench.results import ResultsStore
from tests.stats.fakes import build_store


def _sentences(section) -> list[str]:
    """Each comparison's title followed by its sentences, then the section's own notes."""
    out = []
    for block in section.blocks:
        if isinstance(block, Section):
            out += [block.title, *_sentences(block)]
        elif isinstance(block, Note):
            out.append(block.text)
    return out


def test_the_answer_is_the_first_section_and_has_three_sentences_per_comparison(store_path):
    runs = ResultsStore(store_path).list_runs()
    doc = build_document(runs, store_path=store_path)
    first = doc.sections[0]
    assert first.title == "The answer" and not any(isinstance(b, Table) for b in first.blocks)
    text = _sentences(first)
    for start in ("Most accurate", "Fastest to train", "Fastest to predict"):
        assert sum(t.startswith(start) for t in text) >= 2, start  # resnet18 at 28 and at 64 px
    # the fixture's bench rows: jax-jit has the lowest latency, one repeat each (so no verdict on it)
    predict = [t for t in text if t.startswith("Fastest to predict")]
    assert all("jax (jax-jit" in t and "too few repeats" in t for t in predict[:2]), predict
    assert any(isinstance(b, Details) for b in first.blocks)  # the full pairs table, folded
    assert doc.sections[1].title == "At a glance"


@pytest.fixture(scope="module")
def fake_store(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("fake-report"))


def _answers(store, **options) -> dict[str, list[str]]:
    doc = build_document(store.list_runs(), store_path=store.path, **options)
    text = _sentences(doc.sections[0])
    by_model = {}
    for i, t in enumerate(text):
        for model in ("differs", "same", "noisy"):
            if f" {model}" in t and " · " in t:
                by_model[model] = text[i + 1 : i + 4]
    return by_model


@pytest.fixture(scope="module")
def fake_answer(fake_store):
    return _answers(fake_store)


def test_the_margin_reaches_the_report(fake_store):
    wide = _answers(fake_store, margin_points=10)["differs"][0]
    assert "no framework stands out" in wide and "equivalent within ±10 points" in wide


def test_sentences_carry_the_verdicts(fake_answer):
    acc, train, predict = fake_answer["differs"]
    assert acc.startswith("Most accurate: torch (85.1% test ACC, mean of 4 seed(s))")
    assert "jax (80.1%) really behind (torch ahead by 5.0 points" in acc
    assert train.startswith("Fastest to train: torch") and "2.59x as fast as jax, 95% CI" in train
    assert predict.startswith("Fastest to predict: no inference benchmark")
    assert (
        "no framework stands out" in fake_answer["same"][0]
        and "equivalent within ±1 point" in fake_answer["same"][0]
    )
    noisy = fake_answer["noisy"][0]
    assert "not enough evidence" in noisy and "more seeds would decide" in noisy
    assert "no clear winner" in fake_answer["same"][1]  # equal timings: no fastest framework to name


def _pairs_table(store, **options) -> tuple[Table, str]:
    """The answer's folded pairs table and the section's note on how its verdicts were reached."""
    doc = build_document(store.list_runs(), store_path=store.path, **options)
    blocks = doc.sections[0].blocks
    table = next(t for b in blocks if isinstance(b, Details) for t in b.blocks if t.name == "pairs")
    notes = [b.text for b in blocks if isinstance(b, Note)]
    return table, notes[-1]


def _cell(table: Table, model: str, metric: str, header: str) -> str:
    at = {h: i for i, h in enumerate(table.headers)}
    row = next(
        r for r in table.rows if (r.cells[at["model"]].text, r.cells[at["metric"]].text) == (model, metric)
    )
    return row.cells[at[header]].text


def test_the_report_adjusts_its_verdicts_over_its_comparisons_and_says_so(fake_store):
    table, note = _pairs_table(fake_store)
    assert "Holm-adjusted over 12 comparisons" in table.caption and "Holm-adjusted over the 12" in note
    assert "p (t) adj." in table.headers and "correction" not in table.headers  # said once, in the caption
    # a t test's p far below four decimals: "<0.0001", never the "0.0" of a value rounded first
    assert _cell(table, "differs", "ACC", "p (t)") == "<0.0001"
    assert all(cell.text != "0.0" for row in table.rows for cell in row.cells)
    assert _cell(table, "noisy", "ACC", "p (t)") == "0.7735"
    assert _cell(table, "noisy", "ACC", "p (t) adj.") == "1.0000"
    assert _cell(table, "noisy", "ACC", "more seeds") == "85"  # sized for alpha / 12


def test_the_report_without_correction_gives_the_verdicts_of_each_test_alone(fake_store):
    table, note = _pairs_table(fake_store, correction="none")
    assert "uncorrected for 12 comparisons" in table.caption and "not corrected" in note
    assert _cell(table, "noisy", "ACC", "p (t) adj.") == "0.7735"
    assert _cell(table, "noisy", "ACC", "more seeds") == "42"  # as before the correction existed
