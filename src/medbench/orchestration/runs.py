"""Running an experiment: make sure the data is there, run every trial through an executor, summarise."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medbench.errors import DownloadError
from medbench.orchestration.experiments import ExperimentSpec, Trial
from medbench.report.recipes import variant_tag
from medbench.results import ResultsStore


def prepare_data(spec: ExperimentSpec, trials: list[Trial]) -> None:
    """Downloads (once, here, before any worker starts) every official file the trials need.

    Downloading in the parent keeps workers from racing on the same partial file; offline, the error says
    how to point the experiment at a local copy instead.
    """
    from medbench.data.download import download_dataset
    from medbench.errors import ChecksumError

    needed = sorted(
        {(t.config.data.dataset, t.config.data.size) for t in trials if t.config.data.data_file is None}
    )
    for flag, size in needed:
        root = next(t.config.data.root for t in trials if t.config.data.dataset == flag)
        try:
            # a file the user put at the official path is never replaced here: `medbench download` does that
            download_dataset(flag, size, root=root, mismatch="refuse")
        except ChecksumError as err:
            raise ChecksumError(
                err.problem,
                f"{err.fix} For this experiment: `medbench run {spec.name} --data-file {flag}=PATH`.",
            ) from None
        except DownloadError as err:
            raise DownloadError(
                err.problem,
                f"{err.fix} Or run the experiment on a local file in the official layout: "
                f"`medbench run {spec.name} --data-file {flag}=PATH`.",
            ) from None
    prepare_weights(trials)


def prepare_weights(trials: list[Trial]) -> None:
    """Downloads (once, here) the pretrained weights the trials start from, for the same reason."""
    from medbench.pretrained import resolve_pretrained

    needed = sorted(
        {
            (t.config.model, t.config.finetune.pretrained, str(t.config.init_weights or ""))
            for t in trials
            if t.config.finetune.pretrained
        }
    )
    for model, source, path in needed:
        resolve_pretrained(model, source, path=Path(path) if path else None)


def run_experiment(
    spec: ExperimentSpec,
    trials: list[Trial],
    done: dict[str, Any],
    *,
    store: ResultsStore,
    executor: str,
    address: str | None,
    ray_cpus: int | None,
    runs_root: Path,
    on_event: Callable,
    completed_since: str | None = None,
    stale_after_s: float | None = None,
    profile: bool = False,
) -> None:
    """Runs the trials not in ``done`` through the executor, which claims each in the store first (so
    processes sharing the store run each trial once); ``completed_since`` and ``stale_after_s``: see
    :meth:`medbench.orchestration.executors.LocalExecutor.run`; ``profile``: see
    :func:`medbench.orchestration.jobs.train_job`."""
    from medbench.orchestration.executors import Task, make_executor
    from medbench.orchestration.jobs import train_job

    tasks = [
        Task(
            key=t.key,
            job=train_job(t.config, runs_dir=runs_root / spec.name, experiment=spec.name, profile=profile),
            cpus=spec.resources.cpus,
            gpus=spec.resources.gpus,
            timeout_s=spec.resources.timeout_s,
        )
        for t in trials
        if t.key not in done and spec.measure.train
    ]
    make_executor(executor, address=address, num_cpus=ray_cpus).run(
        tasks,
        store_path=store.path,
        on_event=on_event,
        completed_since=completed_since,
        stale_after_s=stale_after_s,
    )


# The engine a user of each framework would reach for first (Keras: the compiled tf.function, not predict).
DEFAULT_BENCH_ENGINES = {
    "torch": "torch-eager",
    "jax": "jax-jit",
    "keras": "keras-tf-xla",
    "keras-jax": "keras-jax-jit",
    "keras-torch": "keras-torch-eager",
}


def run_bench(spec: ExperimentSpec, store: ResultsStore, *, rerun: bool, echo: Callable[[str], None]) -> int:
    """Runs the experiment's inference benchmark (if it asks for one); returns the number of cells measured.

    Rows carry the experiment's name, so the report puts them beside the training results; a completed
    session is not measured again unless ``rerun``.
    """
    bench = spec.measure.bench
    if bench is None:
        return 0
    if not rerun and store.list_runs(kind="bench", experiment=spec.name, status="completed"):
        echo("inference benchmark: already measured (use --rerun to measure again)")
        return 0
    from medbench.bench.plan import Measurement, make_config
    from medbench.bench.session import run_session

    engines = bench.engines or [DEFAULT_BENCH_ENGINES[f] for f in spec.grid.frameworks]
    threads = (spec.base.get("runtime") or {}).get("threads") or 1
    config = make_config(
        models=spec.grid.models,
        sizes=bench.sizes or spec.grid.sizes,
        engines=engines,
        batch_sizes=bench.batch_sizes,
        repeats=bench.repeats,
        measurement=Measurement(min_count=bench.min_count, min_duration_s=bench.min_duration_s),
        threads=threads,
        dataset=spec.grid.datasets[0],
    )
    result = run_session(config, store_path=store.path, echo=echo, session=spec.name)
    return len(result.records)


def comparison_rows(store: ResultsStore, experiment: str) -> list[dict[str, Any]]:
    """Completed training runs of an experiment grouped over seeds: mean and std of the headline numbers.

    Balanced accuracy and macro F1 are None for runs stored before training recorded them.
    """
    groups: dict[tuple, list] = defaultdict(list)
    for r in store.list_runs(experiment=experiment, kind="train", status="completed"):
        # the fine-tuning configuration (grid axis) and the variant: "gradual mlp_head", or "default"
        variant = variant_tag(r.config) or "default"
        groups[(r.dataset, r.size, r.model, variant, r.framework)].append(r)
    rows = []
    for (dataset, size, model, variant, framework), runs in sorted(groups.items()):
        rows.append(
            {
                "dataset": dataset,
                "size": size,
                "model": model,
                "variant": variant,
                "framework": framework,
                "n": len(runs),
                **_mean_std("test_acc", [r.metrics.get("test_acc") for r in runs]),
                **_mean_std("test_auc", [r.metrics.get("test_auc") for r in runs]),
                **_mean_std("test_balanced_acc", [r.metrics.get("test_balanced_accuracy") for r in runs]),
                **_mean_std("test_macro_f1", [r.metrics.get("test_macro_f1") for r in runs]),
                **_mean_std("s_per_epoch", [r.timings.get("train_s_per_epoch") for r in runs]),
                **_mean_std("images_per_s", [r.timings.get("steady_images_per_s") for r in runs]),
                "official_data": all((r.dataset_provenance or {}).get("official") for r in runs),
            }
        )
    return rows


def _mean_std(name: str, values: list[float | None]) -> dict[str, float | None]:
    clean = np.array([v for v in values if v is not None], dtype=float)
    if clean.size == 0:
        return {name: None, f"{name}_std": None}
    return {name: float(clean.mean()), f"{name}_std": float(clean.std(ddof=1)) if clean.size > 1 else 0.0}
