"""The written report: HTML structure (parsed), embedded images, Markdown tables, and the command line."""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from medbench.report import NoRunsError, write_report
from medbench.report.build import build_document
from medbench.report.comparison_tables import VERDICT_HEADERS
from medbench.report.markdown import render_markdown
from medbench.results import ResultsStore

from .conftest import BLOOD_CLASSES, PATH_CLASSES, SEEDS, environment, metrics, official, run_config, timings


class PageParser(HTMLParser):
    """Collects tables (name, headers, rows of cell texts, row classes), images and notes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.notes: list[str] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head = False
        self._note: list[str] | None = None
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"name": a.get("data-table"), "headers": [], "rows": [], "kinds": []})
        elif tag == "thead":
            self._in_head = True
        elif tag == "tbody":
            self._in_head = False
        elif tag == "tr":
            self._row = []
            if not self._in_head:
                self.tables[-1]["kinds"].append(a.get("class") or "")
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        elif tag == "p" and "note" in (a.get("class") or ""):
            self._note = []
        elif tag == "script":
            self.scripts += 1
        elif tag in ("link", "iframe") or (tag == "a" and (a.get("href") or "").startswith("//")):
            self.external.append(tag)

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            table = self.tables[-1]
            (table["headers"] if self._in_head else table["rows"]).append(self._row)
            self._row = None
        elif tag == "thead":
            self._in_head = False
        elif tag == "p" and self._note is not None:
            self.notes.append("".join(self._note))
            self._note = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._note is not None:
            self._note.append(data)


@pytest.fixture(scope="module")
def page(report_dir) -> PageParser:
    parser = PageParser()
    parser.feed((report_dir / "report.html").read_text(encoding="utf-8"))
    return parser


def tables(page: PageParser, name: str) -> list[dict]:
    return [t for t in page.tables if t["name"] == name]


def decode_png(src: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(src[len(prefix) :], validate=True)))
    image.verify()  # raises on a truncated or corrupt PNG
    return image


def test_every_image_is_an_embedded_valid_png_of_the_stated_size(page):
    assert len(page.images) >= 10
    for img in page.images:
        image = decode_png(img["src"])
        assert image.format == "PNG"
        assert (str(image.width), str(image.height)) == (img["width"], img["height"])
        assert img["alt"]
    assert page.scripts == 0 and page.external == []  # one file, nothing fetched


def test_the_glance_table_has_every_framework_and_the_criterion(page):
    (glance,) = tables(page, "glance")
    # no variants: no Variant column; the verdict comes first, before the figures behind it
    assert glance["headers"][0][:7] == [
        "Dataset",
        "Size",
        "Model",
        "≤ 1.5 pts",
        "ACC spread",
        "Most accurate",
        "Fastest to train (s/epoch)",
    ]
    assert [h for h in glance["headers"][0] if h.endswith("ACC %")] == [
        "torch ACC %",
        "jax ACC %",
        "keras ACC %",
        "Majority-class ACC %",
        "torch bal. ACC %",
        "jax bal. ACC %",
        "keras bal. ACC %",
    ]
    rows = {(r[0], r[1]): r for r in glance["rows"]}
    assert set(rows) == {("bloodmnist", "28"), ("pathmnist", "28"), ("pathmnist", "64")}
    header = glance["headers"][0]
    spread, verdict = header.index("ACC spread"), header.index("≤ 1.5 pts")
    assert rows[("pathmnist", "28")][spread] == "1.50 pts" and rows[("pathmnist", "28")][verdict] == "✓ yes"
    assert rows[("pathmnist", "64")][spread] == "3.50 pts" and rows[("pathmnist", "64")][verdict] == "✗ no"
    assert rows[("pathmnist", "28")][header.index("torch ACC %")] == "91.0 ± 1.4 (n=2)"
    assert rows[("bloodmnist", "28")][header.index("Data")] == "CUSTOM file"
    # the fixture's balanced ACC is ACC - 1 point per run: torch seeds 89 and 91, keras 88 and 89
    assert rows[("pathmnist", "28")][header.index("torch bal. ACC %")] == "90.0 ± 1.4"
    assert rows[("pathmnist", "64")][header.index("keras bal. ACC %")] == "89.5 ± 0.7"
    assert rows[("bloodmnist", "28")][header.index("torch bal. ACC %")] == "94.0"  # one seed, no spread
    assert rows[("bloodmnist", "28")][header.index("jax bal. ACC %")] == "–"


def test_verdict_tables_put_frameworks_beside_the_published_rows(page):
    verdicts = tables(page, "verdict")
    assert len(verdicts) == 3
    assert all(t["headers"][0] == list(VERDICT_HEADERS) for t in verdicts)
    path28 = next(t for t in verdicts if t["rows"][0][0] == "torch" and len(t["rows"]) == 6)
    assert [r[0] for r in path28["rows"][:4]] == ["torch", "jax", "keras", "majority-class baseline"]
    assert path28["kinds"] == ["", "", "", "baseline", "ref", "ref"]
    assert path28["rows"][0][2] == "91.0 ± 1.4" and path28["rows"][0][3] == "[91.0, 93.0] (seed 1)"
    column = VERDICT_HEADERS.index
    assert path28["rows"][1][column("s / epoch")] == "8.25 ± 0.35"  # jax s/epoch
    # balanced ACC = ACC - 1 point and macro F1 = ACC - 2 points in every fixture run
    torch, keras = path28["rows"][0], path28["rows"][2]
    assert (torch[column("Balanced ACC %")], torch[column("Macro F1 %")]) == ("90.0 ± 1.4", "89.0 ± 1.4")
    assert (keras[column("Balanced ACC %")], keras[column("Macro F1 %")]) == ("88.5 ± 0.7", "87.5 ± 0.7")
    assert path28["rows"][4][column("Balanced ACC %")] == "–"  # the papers publish ACC and AUC only
    v2 = path28["rows"][4]
    assert (
        v2[0] == "published · MedMNIST v2 · ResNet-18 (28)"
        and v2[2] == "90.7"
        and v2[-1] == "verified-quoted"
    )


def test_per_class_recall_tables_name_the_classes(page, report_dir):
    blood, path28, _ = tables(page, "recall")  # one per comparison, in the sections' order
    assert path28["headers"][0] == ["Framework", *PATH_CLASSES]
    rows = {r[0]: r[1:] for r in path28["rows"]}
    assert list(rows) == ["torch", "jax", "keras", "test images"]
    # class i: ACC - i points (seed 0), ACC - 2i points (seed 1); torch ACCs 90 and 92
    assert rows["torch"][0] == "91.0 ± 1.4" and rows["torch"][8] == "79.0 ± 4.2"
    assert rows["jax"][8] == "79.0 ± 4.9"  # 82.5 and 75.5
    assert rows["test images"] == ["900", "800", "700", "600", "500", "400", "300", "200", "100"]
    assert blood["headers"][0] == ["Framework", *BLOOD_CLASSES]
    assert blood["rows"][0][0] == "torch" and blood["rows"][0][1] == "95.0" and blood["rows"][0][8] == "88.0"
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    assert "| Framework | adipose | background | debris |" in text
    assert "| torch | 91.0 ± 1.4 | 89.5 ± 0.7 |" in text


def test_unverified_published_figures_are_marked(page):
    blood = next(t for t in tables(page, "verdict") if len(t["rows"]) == 4)
    v2 = next(r for r in blood["rows"] if "MedMNIST v2" in r[0])
    assert v2[2] == "95.8 (unverified)" and v2[-1] == "⚠ unverified"
    assert any("do not quote them as fact" in n for n in page.notes)


def test_custom_data_carries_its_provenance_note_and_hash(page):
    notes = [n for n in page.notes if "bloodmnist" in n and "custom" in n.lower()]
    assert any(n.startswith("Data: custom file, NOT the official bloodmnist") for n in notes)
    assert any("ab" * 32 in n for n in page.notes)  # the full sha256, in the run details
    assert not any(n.startswith("Data: official bloodmnist") for n in page.notes)


def test_failures_environment_and_bench_tables(page):
    (failures,) = tables(page, "failures")
    reasons = [r[-1] for r in failures["rows"]]
    assert len(reasons) == 3
    assert any(r.startswith("out of memory") and "<shape 128x64x64>" in r for r in reasons)  # escaped, intact
    (machines,) = tables(page, "machines")
    assert len(machines["rows"]) == 1 and machines["rows"][0][0] == "bench-host"
    (stacks,) = tables(page, "stacks")
    assert [r[0] for r in stacks["rows"]] == ["torch", "jax", "keras"]
    (bench,) = tables(page, "bench")  # medbench.bench.summary's own table, one row per engine and size
    header = bench["headers"][0]
    cells = [
        (r[header.index("engine")], r[header.index("size")], r[header.index("status")]) for r in bench["rows"]
    ]
    assert [c[:2] for c in cells if c[2] == "ok"] == [
        (engine, str(size)) for engine in ("torch-eager", "jax-jit", "keras-tf-xla") for size in (28, 64)
    ]
    assert [c[:2] for c in cells if c[2].startswith("wrong")] == [("keras-tf-xla", "128")]
    assert len(tables(page, "runs")) == 3 and len(tables(page, "references")) == 1


def test_the_benchmark_figures_are_embedded(page):
    alts = [img["alt"] for img in page.images]
    assert {"latency vs size, resnet18", "throughput, resnet18", "cold start, resnet18"} <= set(alts)


def test_the_upsampling_note_and_sources_are_shown(page):
    assert any('"(224)" rows are 28 px images upsampled' in n for n in page.notes)
    assert any("doi.org/10.1038/s41597-022-01721-8" in n for n in page.notes)


def md_tables(text: str) -> list[list[str]]:
    """Each Markdown table as its lines (header, separator, rows)."""
    found, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append(line)
        elif current:
            found.append(current)
            current = []
    return found + ([current] if current else [])


def test_markdown_has_the_same_tables_and_its_images_exist(report_dir, page):
    text = (report_dir / "report.md").read_text(encoding="utf-8")
    md = md_tables(text)
    assert len(md) == len(page.tables)
    for lines, table in zip(md, page.tables, strict=True):
        assert len(lines) == 2 + len(table["rows"])
        assert lines[1].startswith("|---")
    assert "| Framework / source | Seeds | Test ACC % |" in text
    assert "✗ no" in text and "NOT the official bloodmnist" in text
    assert "&lt;shape 128x64x64&gt;" in text and "<shape" not in text  # store text is not Markdown/HTML
    images = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    assert len(images) == len(page.images)
    for name in images:
        assert (report_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_no_matching_runs_is_a_clear_error(store_path, tmp_path):
    with pytest.raises(NoRunsError, match="No runs to report .*experiment nope"):
        write_report(store_path, tmp_path, experiment="nope")
    with pytest.raises(NoRunsError):
        write_report(ResultsStore(tmp_path / "empty.sqlite"), tmp_path / "out")


def medbench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "medbench.cli", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_writes_the_files_and_prints_their_paths(store_path, tmp_path):
    out = tmp_path / "rep"
    result = medbench("report", "--store", str(store_path), "--dataset", "BloodMNIST", "--output", str(out))
    assert result.returncode == 0, result.stderr
    printed = [Path(line) for line in result.stdout.split()]
    assert printed[:2] == [out / "report.html", out / "report.md"]
    assert all(p.exists() for p in printed) and all(p.suffix == ".png" for p in printed[2:])
    assert "pathmnist" not in (out / "report.md").read_text()  # the dataset filter held


def test_cli_with_no_runs_says_so_and_exits_non_zero(tmp_path):
    result = medbench("report", "--store", str(tmp_path / "empty.sqlite"), "--output", str(tmp_path / "o"))
    assert result.returncode == 2
    assert "No runs to report" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_sparse_and_unfinished_rows_do_not_break_the_report(tmp_path):
    """Rows written by older or crashed code: no config, no metrics, a multi-label matrix, a running run."""
    store = ResultsStore(tmp_path / "sparse.sqlite")
    store.finish_run(store.start_run(kind="train", config={}), metrics={})
    sparse = store.start_run(
        kind="train",
        config={"data": {"size": 28}},
        framework="torch",
        model="simple_cnn",
        dataset="chestmnist",
        size=28,
        seed=0,
    )
    store.finish_run(
        sparse,
        metrics={"test_acc": None, "history": [{"epoch": 1}], "test_confusion_matrix": [[[5, 1], [2, 3]]]},
    )
    store.start_run(
        kind="train", config={}, framework="jax", model="simple_cnn", dataset="chestmnist", size=28
    )
    files = write_report(store, tmp_path / "out")
    parser = PageParser()
    parser.feed(files.html.read_text(encoding="utf-8"))
    (failures,) = tables(parser, "failures")
    assert [r[2] for r in failures["rows"]] == ["running"]
    assert files.images == ()  # nothing to plot: no figure rather than an empty one


def test_the_report_imports_no_deep_learning_framework():
    code = (
        "import sys, medbench.report.build, medbench.report.html, medbench.report.markdown\n"
        "print(sorted(m for m in ('torch', 'jax', 'flax', 'tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def _fill_finetune_study(store: ResultsStore) -> None:
    """A fine-tuning study as ``medbench run`` stores it: two named variants of one model, two seeds each."""
    for variant, trainable, acc in (("full_finetune", "all", 0.90), ("linear_probe", "head", 0.80)):
        for seed in SEEDS:
            config = run_config("torch", 28, seed)
            config["finetune"] = {**config["finetune"], "pretrained": "imagenet", "trainable": trainable}
            config["data"] = {**config["data"], "normalize": "imagenet", "to_rgb": True}
            config["recipe"] = {**config["recipe"], "sampler": "balanced"}
            config["tags"] = {"variant": variant}
            run_id = store.start_run(
                kind="train",
                config=config,
                framework="torch",
                model="resnet18",
                dataset="pathmnist",
                size=28,
                seed=seed,
                experiment="finetune",
                dataset_provenance=official("pathmnist", 28),
                environment=environment("torch"),
            )
            store.finish_run(run_id, metrics=metrics(acc + 0.01 * seed, seed), timings=timings("torch", seed))


def test_experiment_variants_are_rows_of_their_own(tmp_path):
    store = ResultsStore(tmp_path / "finetune.sqlite")
    _fill_finetune_study(store)
    document = build_document(store.list_runs(), store_path=store.path, references=())
    (glance,) = [t for t in document.tables() if t.name == "glance"]
    assert glance.headers[:5] == ("Dataset", "Size", "Model", "Variant", "≤ 1.5 pts")
    cells = [[c.text for c in row.cells] for row in glance.rows]
    column = glance.headers.index
    assert [(r[column("Variant")], r[column("torch ACC %")]) for r in cells] == [
        ("full_finetune", "90.5 ± 0.7 (n=2)"),
        ("linear_probe", "80.5 ± 0.7 (n=2)"),
    ]
    assert glance.rows[1].cells[column("Variant")].hint == "finetune.trainable=head"
    text = render_markdown(document)
    assert "### pathmnist 28 px · resnet18 · linear_probe" in text
    assert "Variant linear_probe: finetune.trainable=head." in text
    assert "balanced sampler, imagenet normalisation, imagenet pretrained, training the head only" in text
    assert len([t for t in document.tables() if t.name == "recall"]) == 2


def test_the_run_summary_shows_balanced_accuracy_and_macro_f1(store_path, tmp_path):
    from rich.console import Console

    from medbench.commands.output import rich_table
    from medbench.commands.run import summary_table
    from medbench.orchestration.runs import comparison_rows

    store = ResultsStore(store_path)
    rows = {
        (r["size"], r["framework"]): r for r in comparison_rows(store, "demo") if r["dataset"] == "pathmnist"
    }
    assert rows[(28, "torch")]["test_balanced_acc"] == pytest.approx(0.90)
    assert rows[(28, "torch")]["test_balanced_acc_std"] == pytest.approx(0.0141421356)
    assert rows[(64, "keras")]["test_macro_f1"] == pytest.approx(0.885)
    console = Console(width=250, record=True)
    console.print(rich_table(summary_table(store, "demo")))
    text = console.export_text()
    assert "balanced ACC" in text and "macro F1" in text
    assert "90.00 ± 1.41" in text  # torch 28 px balanced ACC, percent as in the report
    older = ResultsStore(tmp_path / "older.sqlite")  # runs stored before training recorded the extras
    run_id = older.start_run(
        kind="train",
        config=run_config("jax", 28, 0),
        framework="jax",
        dataset="pathmnist",
        size=28,
        model="resnet18",
        seed=0,
        experiment="old",
    )
    older.finish_run(run_id, metrics={"test_acc": 0.9, "test_auc": 0.99}, timings={})
    console = Console(width=250, record=True)
    console.print(rich_table(summary_table(older, "old")))
    assert "test AUC" in console.export_text() and "balanced ACC" not in console.export_text()
