"""Bad input through the real CLI: each row is one mistake a user (or their machine) makes.

Every row runs ``python -m medbench.cli`` in a subprocess with stdout and stderr piped, and checks the exit
code (2 for a usage error or bad value, 1 for a fault of the environment, 0 for asked-for help), that no
Python traceback is printed, and that the message names the bad thing. Bad input must fail before any
framework is imported, so the whole table runs in seconds; the rows run in parallel threads.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "medmnist"
HAVE_SHARED = (SHARED / "breastmnist.npz").is_file() and (SHARED / "pneumoniamnist.npz").is_file()
HAVE_SYS = Path("/sys").is_dir()  # a folder nobody (root included) can create anything in
DEEP_KEY = ".".join(["a"] * 3000) + "=1"


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    code: int
    says: str  # a fragment of the output naming the bad thing ({placeholders} as in argv)
    env: dict[str, str] = field(default_factory=dict)
    absent: tuple[str, ...] = ()  # paths that must not exist afterwards (nothing created, nothing stored)
    needs: str = ""  # "shared" or "sys"


def c(id: str, *argv: str, code: int = 2, says: str, env=None, absent=(), needs="") -> Case:
    return Case(id, tuple(argv), code, says, dict(env or {}), tuple(absent), needs)


TRAIN = ("train", "-m", "simple_cnn", "-d", "breastmnist", "-e", "1")
NOTHING_STORED = ("{home}/results.sqlite", "{home}/runs")

CASES = [
    # ---- usage errors: typer's bundled click (exit 2, one line) ----
    c("unknown-command", "nosuchcommand", says="nosuchcommand"),
    c("unknown-option", "train", "--no-such-option", says="--no-such-option"),
    c("epochs-not-int", "train", "--epochs", "two", says="'two'"),
    c("info-no-argument", "info", says="Missing argument"),
    c("download-size-not-int", "download", "bloodmnist", "-s", "abc", says="'abc'"),
    c("results-size-not-int", "results", "--size", "abc", says="'abc'"),
    c("evaluate-no-argument", "evaluate", says="Missing argument"),
    c("predict-no-images", "predict", "{run}", says="Missing argument"),
    c("seed-not-int", "train", "--seed", "x", says="'x'"),
    c("models-size-not-int", "models", "--size", "big", says="'big'"),
    c("bench-repeats-not-int", "bench", "--repeats", "many", says="'many'"),
    c("option-without-value", "train", "-e", says="-e"),
    c("weights-unknown-command", "weights", "nosuch", says="nosuch"),
    c("run-no-argument", "run", says="Missing argument"),
    # ---- help, asked for (exit 0) ----
    c("short-help", "-h", code=0, says="Usage"),
    c("bare-medbench", code=0, says="Usage"),
    c("command-short-help", "train", "-h", code=0, says="--epochs"),
    c("bare-group", "weights", code=0, says="Usage"),
    # ---- data commands ----
    c("unknown-dataset", "info", "bloodmnst", says="bloodmnst"),
    c("unpublished-size", "download", "pathmnist", "--size", "32", says="32"),
    c("verify-unknown-dataset", "verify", "nosuchmnist", says="nosuchmnist"),
    c("datasets-missing-root", "datasets", "--root", "{tmp}/no-such-root", says="{tmp}/no-such-root"),
    c("datasets-root-is-file", "datasets", "--root", "{file}", says="{file}"),
    c("info-missing-root", "info", "breastmnist", "--root", "{tmp}/no-such-root", says="no-such-root"),
    c("verify-missing-root", "verify", "--root", "{tmp}/no-such-root", says="no-such-root"),
    # ---- results, report, bench-report: filters and the store ----
    c("results-bogus-status", "results", "--status", "bogus", says="bogus"),
    c("results-negative-limit", "results", "--limit", "-1", says="--limit -1"),
    c("results-zero-limit", "results", "--limit", "0", says="--limit 0"),
    c("results-unpublished-size", "results", "--size", "32", says="--size 32"),
    c("results-unknown-framework", "results", "-f", "mxnet", says="mxnet"),
    c(
        "results-mistyped-store",
        "results",
        "--store",
        "{tmp}/typo.sqlite",
        says="typo.sqlite",
        absent=("{tmp}/typo.sqlite",),
    ),
    c(
        "report-mistyped-store",
        "report",
        "--store",
        "{tmp}/typo2.sqlite",
        "-o",
        "{tmp}/rep",
        says="typo2.sqlite",
        absent=("{tmp}/typo2.sqlite", "{tmp}/rep"),
    ),
    c(
        "bench-report-mistyped-store",
        "bench-report",
        "--store",
        "{tmp}/typo3.sqlite",
        says="typo3.sqlite",
        absent=("{tmp}/typo3.sqlite",),
    ),
    c(
        "results-env-mistyped-store",
        "results",
        says="typo4.sqlite",
        env={"MEDBENCH_RESULTS": "{tmp}/typo4.sqlite"},
        absent=("{tmp}/typo4.sqlite",),
    ),
    c("results-store-is-folder", "results", "--store", "{folder}", says="is a folder"),
    c("results-store-not-sqlite", "results", "--store", "{file}", says="--store PATH"),
    c("report-output-is-file", "report", "--store", "{store}", "-o", "{file}", says="{file}"),
    c(
        "report-output-names-a-page",
        "report",
        "--store",
        "{store}",
        "-o",
        "{tmp}/page.html",
        says="is a folder",
        absent=("{tmp}/page.html",),
    ),
    c(
        "run-report-names-a-page",
        "run",
        "quick",
        "--report",
        "{tmp}/quick.html",
        says="--report",
        absent=("{tmp}/quick.html", *NOTHING_STORED),
    ),
    c(
        "export-read-only",
        "results",
        "--store",
        "{store}",
        "--export",
        "/sys/medbench-x/runs.csv",
        code=1,
        says="/sys/medbench-x",
        needs="sys",
    ),
    # ---- models ----
    c("models-size-zero", "models", "-s", "0", says="--size 0"),
    c("models-classes-zero", "models", "--classes", "0", says="--classes 0"),
    c("models-channels-two", "models", "--channels", "2", says="--channels 2"),
    c("models-unknown-framework", "models", "-f", "mxnet", says="mxnet"),
    c("models-no-match", "models", "-m", "nosuch*", says="nosuch*"),
    # ---- run: experiment files ----
    c("run-empty-frameworks", "run", "{exp_empty}", says="frameworks"),
    c("run-folder", "run", "{folder}", says="is a folder"),
    c("run-unknown-experiment", "run", "nosuchexperiment", says="nosuchexperiment"),
    c(
        "run-set-empty-frameworks",
        "run",
        "quick",
        "--set",
        "grid.frameworks=[]",
        "--dry-run",
        says="frameworks",
    ),
    c("run-set-empty-seeds", "run", "quick", "--set", "grid.seeds=[]", "--dry-run", says="seeds"),
    c("run-missing-data-file", "run", "quick", "--data-file", "bloodmnist={tmp}/none.npz", says="none.npz"),
    c(
        "run-other-datasets-file",
        "run",
        "quick",
        "--data-file",
        "bloodmnist={pneumonia}",
        says="pneumoniamnist",
        absent=NOTHING_STORED,
        needs="shared",
    ),
    c("run-data-file-not-pair", "run", "quick", "--data-file", "bloodmnist", says="FLAG=PATH"),
    c("run-deep-set", "run", "quick", "--set", DEEP_KEY, "--dry-run", says="3000 levels"),
    # ---- train: values, files and folders, refused before any row or folder exists ----
    c("train-config-folder", "train", "--config", "{folder}", says="is a folder"),
    c("train-config-missing", "train", "--config", "{tmp}/none.toml", says="none.toml"),
    c("train-config-bad-toml", "train", "--config", "{bad_toml}", says="bad.toml"),
    c("train-deep-set", *TRAIN, "--set", DEEP_KEY, says="3000 levels", absent=NOTHING_STORED),
    c("train-set-no-equals", *TRAIN, "--set", "recipe.epochs", says="KEY=VALUE"),
    c("train-zero-epochs", "train", "-d", "breastmnist", "-e", "0", says="recipe.epochs"),
    c("train-unknown-dataset", "train", "-d", "nosuchmnist", says="nosuchmnist"),
    c("train-unpublished-size", "train", "-d", "breastmnist", "-s", "32", says="32"),
    c("train-unknown-framework", *TRAIN, "-f", "mxnet", says="mxnet"),
    c("train-unknown-model", "train", "-m", "nosuchnet", "-d", "breastmnist", says="nosuchnet"),
    c(
        "train-pretrained-simple-cnn",
        *TRAIN,
        "--pretrained",
        says="simple_cnn",
        absent=NOTHING_STORED,
        needs="shared",
    ),
    c(
        "train-missing-data-file",
        *TRAIN,
        "--data-file",
        "{tmp}/none.npz",
        says="none.npz",
        absent=NOTHING_STORED,
    ),
    c(
        "train-other-datasets-file",
        *TRAIN,
        "--data-file",
        "{pneumonia}",
        says="pneumoniamnist",
        absent=NOTHING_STORED,
        needs="shared",
    ),
    c("train-32px-file", *TRAIN, "--data-file", "{npz32}", says="28, 64, 128, 224", absent=NOTHING_STORED),
    c(
        "train-official-file-missing",
        "train",
        "-d",
        "pneumoniamnist",
        "-e",
        "1",
        says="medbench download pneumoniamnist",
        absent=NOTHING_STORED,
    ),
    c(
        "train-missing-weights",
        *TRAIN,
        "--weights",
        "{tmp}/none.pth",
        says="none.pth",
        absent=NOTHING_STORED,
        needs="shared",
    ),
    c("train-output-is-file", *TRAIN, "-o", "{file}", says="{file}", absent=NOTHING_STORED, needs="shared"),
    c("train-output-read-only", *TRAIN, "-o", "/sys/medbench-x", says="/sys/medbench-x", needs="shared+sys"),
    c(
        "train-home-read-only",
        *TRAIN,
        says="/sys/medbench-home",
        env={"MEDBENCH_HOME": "/sys/medbench-home"},
        needs="shared+sys",
    ),
    c("resume-missing", "train", "--resume", "{tmp}/no-run", says="no-run"),
    c("resume-file", "train", "--resume", "{file}", says="{file}"),
    c("resume-not-a-run", "train", "--resume", "{folder}", says="not a resumable run folder"),
    c("resume-empty-checkpoint-json", "train", "--resume", "{empty_meta}", says="is empty"),
    c("resume-truncated-checkpoint-json", "train", "--resume", "{trunc_meta}", says="damaged"),
    c("resume-truncated-progress-json", "train", "--resume", "{trunc_progress}", says="progress.json"),
    # ---- evaluate and predict ----
    c("evaluate-empty-checkpoint-json", "evaluate", "{empty_meta}", says="is empty"),
    c("evaluate-truncated-checkpoint-json", "evaluate", "{trunc_meta}", says="damaged"),
    c("evaluate-missing-folder", "evaluate", "{tmp}/no-run", says="no-run"),
    c("evaluate-unknown-split", "evaluate", "{run}", "--split", "dev", says="'dev'"),
    c(
        "evaluate-other-datasets-file",
        "evaluate",
        "{run}",
        "--data-file",
        "{pneumonia}",
        says="breastmnist",
        needs="shared",
    ),
    c("evaluate-missing-data-file", "evaluate", "{run}", "--data-file", "{tmp}/none.npz", says="none.npz"),
    c("evaluate-negative-bootstrap", "evaluate", "{run}", "--bootstrap", "-5", says="--bootstrap -5"),
    c("predict-truncated-checkpoint-json", "predict", "{trunc_meta}", "{bomb}", says="damaged"),
    c("predict-top-zero", "predict", "{run}", "{bomb}", "--top", "0", says="--top 0"),
    c("predict-top-negative", "predict", "{run}", "{bomb}", "--top", "-2", says="--top -2"),
    c("predict-decompression-bomb", "predict", "{run}", "{bomb}", code=1, says="bomb.png"),
    c("predict-not-an-image", "predict", "{run}", "{not_image}", code=1, says="not-an-image.png"),
    c("predict-missing-image", "predict", "{run}", "{tmp}/none.png", code=1, says="none.png"),
    # ---- user text with Rich markup in it is printed as it is ----
    c("markup-in-root", "datasets", "--root", "{weird}/missing", says="we[ir]d/missing"),
    c("markup-in-run-folder", "evaluate", "{weird}/no-run", says="we[ir]d/no-run"),
    c("markup-in-store", "results", "--store", "{weird}/s.sqlite", says="we[ir]d/s.sqlite"),
    c(
        "markup-in-home",
        "train",
        "--resume",
        "{weird}/home/runs/x",
        says="we[ir]d/home/runs/x",
        env={"MEDBENCH_HOME": "{weird}/home"},
    ),
    # ---- other commands ----
    c("weights-unknown-model", "weights", "download", "nosuchnet", says="nosuchnet"),
    c("bench-unpublished-size", "bench", "-s", "30", says="30"),
]


# ---- the scene every row runs in ----------------------------------------------------------------------------


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels: what a decompression bomb looks like."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _breast_meta() -> dict:
    from medbench.config import parse_config

    config = parse_config({"framework": "torch", "model": "simple_cnn", "data": {"dataset": "breastmnist"}})
    return {
        "config": config.to_dict(),
        "framework": "torch",
        "dataset": "breastmnist",
        "task": "binary-class",
        "class_names": ["malignant", "normal, benign"],
        "in_channels": 1,
        "source_channels": 1,
        "image_size": 28,
        "input_size": 28,
        "normalization": "official",
        "provenance": {},
    }


def _run_folder(path: Path, meta: str, progress: str = '{"epochs_done": 1}') -> str:
    path.mkdir(parents=True)
    (path / "checkpoint.json").write_text(meta)
    (path / "progress.json").write_text(progress)
    return str(path)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> dict[str, str]:
    from medbench.results import ResultsStore

    tmp = tmp_path_factory.mktemp("bad-inputs")
    data = tmp / "data"
    data.mkdir()
    if HAVE_SHARED:
        shutil.copy(SHARED / "breastmnist.npz", data / "breastmnist.npz")
    meta = json.dumps(_breast_meta())
    (tmp / "folder").mkdir()
    (tmp / "folder" / "a.toml").write_text('name = "a"\n')
    (tmp / "existing.txt").write_text("a user's file\n")
    (tmp / "bad.toml").write_text("recipe = [\n")
    (tmp / "bomb.png").write_bytes(_png_claiming(40000, 40000))
    (tmp / "not-an-image.png").write_text("not a PNG")
    (tmp / "empty-frameworks.toml").write_text(
        'name = "empty"\n[grid]\ndatasets = ["breastmnist"]\nframeworks = []\n'
    )
    images = {
        f"{s}_images": np.zeros((n, 32, 32), np.uint8) for s, n in (("train", 4), ("val", 2), ("test", 2))
    }
    labels = {f"{s}_labels": np.zeros((n, 1), np.uint8) for s, n in (("train", 4), ("val", 2), ("test", 2))}
    np.savez_compressed(tmp / "breast32.npz", **images, **labels)
    ResultsStore(tmp / "store.sqlite")
    weird = tmp / "we[ir]d"
    weird.mkdir()
    return {
        "tmp": str(tmp),
        "data": str(data),
        "file": str(tmp / "existing.txt"),
        "folder": str(tmp / "folder"),
        "bad_toml": str(tmp / "bad.toml"),
        "bomb": str(tmp / "bomb.png"),
        "not_image": str(tmp / "not-an-image.png"),
        "exp_empty": str(tmp / "empty-frameworks.toml"),
        "npz32": str(tmp / "breast32.npz"),
        "store": str(tmp / "store.sqlite"),
        "pneumonia": str(SHARED / "pneumoniamnist.npz"),
        "weird": str(weird),
        "run": _run_folder(tmp / "run", meta),
        "empty_meta": _run_folder(tmp / "empty-meta", ""),
        "trunc_meta": _run_folder(tmp / "trunc-meta", meta[: len(meta) // 2]),
        "trunc_progress": _run_folder(tmp / "trunc-progress", meta, '{"epochs_done": 1, "st'),
    }


def _fill(text: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def _invoke(case: Case, scene: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    home = Path(scene["tmp"]) / "homes" / case.id
    values = {**scene, "home": str(home)}
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MEDBENCH_RESULTS", "MEDBENCH_HOME", "MEDBENCH_DATA_ROOT")
    }
    env.update(MEDBENCH_HOME=str(home), MEDBENCH_DATA_ROOT=scene["data"], COLUMNS="200")
    env.update({k: _fill(v, values) for k, v in case.env.items()})
    result = subprocess.run(
        [sys.executable, "-m", "medbench.cli", *(_fill(a, values) for a in case.argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    return result, values


@pytest.fixture(scope="module")
def outcomes(scene):
    """Every row's process, run four at a time (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {case.id: pool.submit(_invoke, case, scene) for case in CASES if _available(case)}
        return {key: future.result() for key, future in futures.items()}


def _available(case: Case) -> bool:
    return ("shared" not in case.needs or HAVE_SHARED) and ("sys" not in case.needs or HAVE_SYS)


def test_the_table_is_large_and_its_ids_unique():
    assert len(CASES) >= 60
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(case: Case, outcomes):
    if not _available(case):
        pytest.skip(f"needs {case.needs}: " + ("../shared data absent" if not HAVE_SHARED else "no /sys"))
    result, values = outcomes[case.id]
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    assert result.returncode == case.code, (
        f"exit {result.returncode}, expected {case.code}:\n{output[-3000:]}"
    )
    assert _fill(case.says, values) in output, output[-3000:]
    if case.code != 0:
        errors = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(errors) == 1, f"expected one line on stderr:\n{result.stderr}"
    for path in case.absent:
        assert not Path(_fill(path, values)).exists(), f"{_fill(path, values)} was created"
