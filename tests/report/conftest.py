"""A results store with synthetic but realistic rows, shaped exactly as ``medbench.training`` writes them.

pathmnist / resnet18 at 28 and 64 px, 3 frameworks x 2 seeds, with test ACCs chosen so that the 28 px
frameworks lie exactly 1.5 points apart (the criterion's edge) and the 64 px ones 3.5 points apart; one failed
and one interrupted run; one run on a custom BloodMNIST rebuild; inference-benchmark rows for three engines
at two sizes, and one engine that gave wrong answers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medbench.config import DataConfig, RecipeConfig, RunConfig
from medbench.results import ResultsStore

FRAMEWORKS = ("torch", "jax", "keras")
SEEDS = (0, 1)
SIZES = (28, 64)
# (size, framework) -> test ACC of seed 0 and seed 1.
TEST_ACC = {
    (28, "torch"): (0.900, 0.920),
    (28, "jax"): (0.905, 0.915),
    (28, "keras"): (0.890, 0.900),
    (64, "torch"): (0.930, 0.940),
    (64, "jax"): (0.935, 0.945),
    (64, "keras"): (0.900, 0.910),
}
S_PER_EPOCH = {"torch": (10.0, 12.0), "jax": (8.0, 8.5), "keras": (14.0, 15.0)}
PATH_CLASSES = (
    "adipose",
    "background",
    "debris",
    "lymphocytes",
    "mucus",
    "smooth muscle",
    "normal colon mucosa",
    "cancer-associated stroma",
    "colorectal adenocarcinoma epithelium",
)
BLOOD_CLASSES = (
    "basophil",
    "eosinophil",
    "erythroblast",
    "immature granulocytes",
    "lymphocyte",
    "monocyte",
    "neutrophil",
    "platelet",
)
CUSTOM_SHA256 = "ab" * 32


def run_config(
    framework: str, size: int, seed: int, *, dataset: str = "pathmnist", data_file: str | None = None
) -> dict:
    return RunConfig(
        framework=framework,
        model="resnet18",
        data=DataConfig(dataset=dataset, size=size, data_file=data_file),
        recipe=RecipeConfig(epochs=3),
        seed=seed,
    ).to_dict()


def environment(framework: str) -> dict:
    """What ``capture_environment(extra={"framework": ...})`` stores, trimmed to what the report reads."""
    versions = {
        "torch": {"torch": "2.5.1"},
        "jax": {"jax": "0.4.35", "flax": "0.10.2"},
        "keras": {"keras": "3.6.0", "tensorflow": "2.18.0"},
    }
    return {
        "captured_at": "2025-01-01T00:00:00+00:00",
        "hostname": "bench-host",
        "os": {"platform": "Linux-6.1.0-x86_64-with-glibc2.36", "system": "Linux"},
        "python": {"version": "3.11.2"},
        "cpu": {
            "model": "AMD EPYC 7B13",
            "logical_cores": 2,
            "physical_cores": 1,
            "usable_cores": 2,
            "cgroup_cpu_limit": None,
        },
        "memory_total_bytes": 8 * 2**30,
        "gpus": [],
        "gpu_error": None,
        "medbench": {"version": "0.1.0", "git_commit": "0123456789abcdef", "git_dirty": False},
        "packages": {"numpy": "2.1.0"},
        "env": {"OMP_NUM_THREADS": "2"},
        "framework": {
            "name": framework,
            "versions": versions[framework],
            "device": "AMD EPYC 7B13",
            "runtime": {"threads": 2, "interop_threads": 1, "device": "cpu", "precision": "fp32"},
        },
    }


def official(dataset: str, size: int) -> dict:
    return {
        "path": f"/data/{dataset}_{size}.npz",
        "official": True,
        "verified": True,
        "md5": "0" * 32,
        "sha256": None,
        "n_samples": {"train": 100, "val": 20, "test": 30},
        "note": "",
        "memory_mapped": [],
    }


def confusion(acc: float, k: int = 9, per_class: int = 100) -> list[list[int]]:
    """A k-class matrix whose diagonal holds ``acc`` of every row, the rest on the next class."""
    right = round(acc * per_class)
    return [
        [right if c == r else (per_class - right if c == (r + 1) % k else 0) for c in range(k)]
        for r in range(k)
    ]


def class_recall(acc: float, seed: int, k: int = 9) -> list[float]:
    """Recall falling by 1 point per class index for seed 0 and 2 points for seed 1 (rare classes last)."""
    return [acc - 0.01 * i * (1 + seed) for i in range(k)]


def metrics(acc: float, seed: int) -> dict:
    auc = 0.95 + acc / 20
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "lr": 1e-3, "val_acc": acc - 0.03 / e, "val_auc": auc - 0.02 / e}
        for e in (1, 2, 3)
    ]
    return {
        "test_acc": acc,
        "test_auc": auc,
        "val_acc": acc + 0.001,
        "val_auc": auc + 0.001 * seed,  # seed 1 has the better validation AUC everywhere
        "test_acc_ci": {
            "low": acc - 0.01,
            "high": acc + 0.01,
            "confidence": 0.95,
            "n_boot": 1000,
            "n_skipped": 0,
            "method": "percentile",
        },
        "test_auc_ci": {
            "low": auc - 0.005,
            "high": auc + 0.005,
            "confidence": 0.95,
            "n_boot": 1000,
            "n_skipped": 0,
            "method": "percentile",
        },
        "test_balanced_accuracy": acc - 0.01,
        "test_macro_f1": acc - 0.02,
        "test_per_class": {
            "name": list(PATH_CLASSES),
            "precision": [acc] * 9,
            "recall": class_recall(acc, seed),
            "f1": [acc] * 9,
            "support": [100 * (9 - i) for i in range(9)],
        },
        "test_confusion_matrix": confusion(acc),
        "best_epoch": 3,
        "epochs_run": 3,
        "history": history,
    }


def timings(framework: str, seed: int) -> dict:
    s = S_PER_EPOCH[framework][seed]
    return {
        "train_s_per_epoch": s,
        "steady_images_per_s": 89996 / s,
        "first_step_s": 2.0 + seed,
        "wall_total_s": 3 * s + 5,
        "framework_import_s": 1.5,
        "peak_rss_bytes": 2 * 2**30,
    }


def populate(store: ResultsStore) -> None:
    """Fills ``store`` with the rows described in the module docstring."""
    for size in SIZES:
        for framework in FRAMEWORKS:
            for seed in SEEDS:
                run_id = store.start_run(
                    kind="train",
                    config=run_config(framework, size, seed),
                    framework=framework,
                    model="resnet18",
                    dataset="pathmnist",
                    size=size,
                    seed=seed,
                    experiment="demo",
                    dataset_provenance=official("pathmnist", size),
                    environment=environment(framework),
                )
                store.finish_run(
                    run_id,
                    metrics=metrics(TEST_ACC[(size, framework)][seed], seed),
                    timings=timings(framework, seed),
                )
    failed = store.start_run(
        kind="train",
        config=run_config("keras", 64, 2),
        framework="keras",
        model="resnet18",
        dataset="pathmnist",
        size=64,
        seed=2,
        experiment="demo",
        environment=environment("keras"),
    )
    store.fail_run(
        failed, "out of memory: ResourceExhaustedError: OOM when allocating tensor <shape 128x64x64>"
    )
    interrupted = store.start_run(
        kind="train",
        config=run_config("jax", 28, 2),
        framework="jax",
        model="resnet18",
        dataset="pathmnist",
        size=28,
        seed=2,
        experiment="demo",
        environment=environment("jax"),
    )
    store.fail_run(interrupted, "interrupted by the user after 1 epoch(s)", status="interrupted")
    custom = store.start_run(
        kind="train",
        config=run_config("torch", 28, 0, dataset="bloodmnist", data_file="/data/bloodmnist_rebuild.npz"),
        framework="torch",
        model="resnet18",
        dataset="bloodmnist",
        size=28,
        seed=0,
        experiment="demo",
        dataset_provenance={
            "path": "/data/bloodmnist_rebuild.npz",
            "official": False,
            "verified": False,
            "md5": "1" * 32,
            "sha256": CUSTOM_SHA256,
            "n_samples": {"train": 100, "val": 20, "test": 30},
            "note": "custom file (MD5 differs from the official bloodmnist.npz)",
            "memory_mapped": [],
        },
        environment=environment("torch"),
    )
    custom_metrics = metrics(0.95, 0)
    custom_metrics["test_confusion_matrix"] = confusion(0.95, k=8)
    custom_metrics["test_per_class"] = {
        "name": list(BLOOD_CLASSES),
        "precision": [0.95] * 8,
        "recall": class_recall(0.95, 0, k=8),
        "f1": [0.95] * 8,
        "support": [100] * 8,
    }
    store.finish_run(custom, metrics=custom_metrics, timings=timings("torch", 0))


ENGINES = {"torch-eager": "torch", "jax-jit": "jax", "keras-tf-xla": "keras"}
BATCHES = (1, 8, 32)


def bench_config(engine: str, size: int) -> dict:
    """As ``medbench.bench.plan.cell_config`` stores it (the fields the report reads)."""
    return {
        "benchmark": "inference",
        "engine": engine,
        "engine_framework": ENGINES[engine],
        "model": "resnet18",
        "image_size": size,
        "dataset": "pathmnist",
        "batch_sizes": list(BATCHES),
        "threads": 2,
        "device": "cpu",
    }


def bench_metrics(engine: str, size: int) -> dict:
    """Latency grows with the pixel count; jax is the fastest engine, keras the slowest to start."""
    factor = {"torch-eager": 1.0, "jax-jit": 0.8, "keras-tf-xla": 1.3}[engine]
    p50 = factor * 2.0 * (size / 28) ** 2
    per_batch = {f"b{b}_images_per_s": b * 1000 / (p50 * (1 + 0.6 * (b - 1) ** 0.9)) for b in BATCHES}
    return {
        "outcome": "ok",
        "repeat": 0,
        "latency_p50_ms": p50,
        "latency_p99_ms": p50 * 1.2,
        **per_batch,
        "best_images_per_s": max(per_batch.values()),
        "best_batch_size": 32,
        "cold_start_s": {"torch-eager": 3.0, "jax-jit": 4.5, "keras-tf-xla": 7.0}[engine] + size / 100,
        "compile_s": {"torch-eager": 0.0, "jax-jit": 1.2, "keras-tf-xla": 2.5}[engine],
    }


def populate_bench(store: ResultsStore) -> None:
    for size in SIZES:
        for engine, framework in ENGINES.items():
            run_id = store.start_run(
                kind="bench",
                config=bench_config(engine, size),
                framework=framework,
                model="resnet18",
                dataset="pathmnist",
                size=size,
                experiment="demo",
                environment=environment(framework),
            )
            store.finish_run(run_id, metrics=bench_metrics(engine, size), timings={"measure_s": 4.0})
    wrong = store.start_run(
        kind="bench",
        config=bench_config("keras-tf-xla", 128),
        framework="keras",
        model="resnet18",
        dataset="pathmnist",
        size=128,
        experiment="demo",
    )
    store.fail_run(wrong, "wrong answers: max abs difference 0.31 > atol 0.001", metrics={"outcome": "wrong"})


@pytest.fixture(scope="session")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store") / "results.sqlite"
    store = ResultsStore(path)
    populate(store)
    populate_bench(store)
    return path


@pytest.fixture(scope="module")
def runs(store_path) -> list:
    """Every row of the fixture's store."""
    return ResultsStore(store_path).list_runs()


@pytest.fixture(scope="module")
def comparisons(runs) -> dict:
    """The report's comparisons of the fixture's store, by (dataset, size)."""
    from medbench.report.aggregate import compare

    return {(c.key.dataset, c.key.size): c for c in compare(runs)}


@pytest.fixture(scope="session")
def report_dir(store_path, tmp_path_factory) -> Path:
    """The report of the synthetic store, written once per test session (plots take a few seconds)."""
    from medbench.report import write_report

    out = tmp_path_factory.mktemp("report")
    write_report(store_path, out)
    return out


# ---- what `medbench run quick` writes ------------------------------------------------------------------------
# simple_cnn on BloodMNIST 28 px, one seed per framework; keras collapsed onto the majority class (neutrophil,
# 1,393 of the official 3,421 test images); then one inference-benchmark row per engine (one size, batch 1 and
# 64, one repeat), whose environment describes the engine (as medbench.bench.cell stores it), and the
# benchmark's machine-peak row (framework "numpy", no environment).
BLOOD_TEST_SUPPORT = (244, 624, 311, 579, 243, 284, 666, 470)  # the official test split, per class
BLOOD_TRAIN_COUNTS = (852, 2181, 1085, 2026, 849, 993, 2330, 1643)
QUICK_ACC = {"torch": 0.861, "jax": 0.857, "keras": None}  # None: the majority class for every image
QUICK_ENGINES = {"torch-eager": "torch", "jax-jit": "jax", "keras-tf-xla": "keras"}


def quick_metrics(framework: str) -> dict:
    total = sum(BLOOD_TEST_SUPPORT)
    majority = BLOOD_TRAIN_COUNTS.index(max(BLOOD_TRAIN_COUNTS))
    acc = QUICK_ACC[framework]
    m = metrics(acc if acc is not None else BLOOD_TEST_SUPPORT[majority] / total, 0)
    if acc is None:
        recall = [1.0 if i == majority else 0.0 for i in range(8)]
        m.update(test_auc=0.5, test_balanced_accuracy=1 / 8, test_macro_f1=0.04)
    else:
        recall = class_recall(acc, 0, k=8)
    m["test_task"] = "multi-class"
    m["test_n_samples"] = total
    m["test_per_class"] = {
        "name": list(BLOOD_CLASSES),
        "precision": [0.9] * 8,
        "recall": recall,
        "f1": [0.9] * 8,
        "support": list(BLOOD_TEST_SUPPORT),
    }
    m["train_label_counts"] = {"n_samples": sum(BLOOD_TRAIN_COUNTS), "per_class": list(BLOOD_TRAIN_COUNTS)}
    m["test_confusion_matrix"] = confusion(m["test_acc"], k=8)
    return m


def engine_environment(engine: str) -> dict:
    """``capture_environment(extra={"engine": ..., "threads": ...})`` of a benchmark cell."""
    env = environment(QUICK_ENGINES[engine])
    info = {k: v for k, v in env.pop("framework").items() if k != "name"}  # versions, device, runtime
    env["engine"] = {"name": engine, "framework": QUICK_ENGINES[engine], **info}
    env["threads"] = 2
    return env


def populate_quick(store: ResultsStore) -> None:
    for framework in FRAMEWORKS:
        config = run_config(framework, 28, 0, dataset="bloodmnist")
        config["model"] = "simple_cnn"
        run_id = store.start_run(
            kind="train",
            config=config,
            framework=framework,
            model="simple_cnn",
            dataset="bloodmnist",
            size=28,
            seed=0,
            experiment="quick",
            dataset_provenance=official("bloodmnist", 28),
            environment=environment(framework),
        )
        store.finish_run(run_id, metrics=quick_metrics(framework), timings=timings(framework, 0))
    peak = store.start_run(kind="bench-peak", config={"benchmark": "matmul_peak"}, framework="numpy")
    store.finish_run(peak, metrics={"peak_flops_per_s": 1.2e11})
    for engine, framework in QUICK_ENGINES.items():
        config = {**bench_config(engine, 28), "model": "simple_cnn", "dataset": "bloodmnist"}
        config["batch_sizes"] = [1, 64]
        run_id = store.start_run(
            kind="bench",
            config=config,
            framework=framework,
            model="simple_cnn",
            dataset="bloodmnist",
            size=28,
            experiment="quick",
        )
        m = bench_metrics(engine, 28)
        m = {k: v for k, v in m.items() if not k.startswith("b") or k.startswith("best")}
        m.update(b1_images_per_s=1000 / m["latency_p50_ms"], b64_images_per_s=8000 / m["latency_p50_ms"])
        store.finish_run(
            run_id, metrics=m, timings={"measure_s": 1.0}, environment=engine_environment(engine)
        )


@pytest.fixture(scope="session")
def quick_store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quick") / "results.sqlite"
    populate_quick(ResultsStore(path))
    return path


@pytest.fixture(scope="session")
def quick_report_dir(quick_store_path, tmp_path_factory) -> Path:
    from medbench.report import write_report

    out = tmp_path_factory.mktemp("quick-report")
    write_report(quick_store_path, out)
    return out
