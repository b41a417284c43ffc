"""The training probe: training img/s of one run config, measured in a fresh worker process.

Two ways to train, both through medbench's own trainer (``Backend.create_trainer``) from the shared initial
weights:

- ``bare``: the trainer's ``train_step`` alone, on a few random batches held in memory (numpy, already
  normalised, with the shared dropout masks drawn beforehand). The first step (compilation, autotuning) is
  timed apart; the rest follows :func:`medbench.timing.measure_latency` with :class:`~medbench.bench.plan.
  Measurement`'s rules, as every inference cell: warm up until two windows agree, then run until both a
  minimum number of steps and a minimum duration are reached, syncing before every clock read.
- ``loop``: medbench's training loop itself (:func:`medbench.training.loop.train`), one epoch of ``steps``
  steps on a synthetic data file in the official layout (:mod:`medbench.bench.loop_probe`): the end-to-end
  rate the bare loop is held against (the harness overhead).

Parent side: :func:`run_probe` starts ``python -m medbench.orchestration.worker JOB.json`` for a job of kind
``train_probe`` through :func:`medbench.orchestration.runner.run_job` (timeouts, deaths by signal and a
vanished parent recorded as for every run) and returns a :class:`ProbeResult`. Child side:
:func:`run_probe_job` measures and records one row of kind ``train_probe``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from medbench.bench.plan import Measurement
from medbench.config import RunConfig, parse_config
from medbench.orchestration.jobs import start_columns

KIND = "train_probe"
Mode = Literal["bare", "loop"]
BATCHES = 4  # distinct in-memory batches, cycled: no framework sees the same buffer twice in a row
# A probe is short: it ranks settings, it does not replace a benchmark's repeats
PROBE_MEASUREMENT = Measurement(min_count=20, min_duration_s=3.0, max_duration_s=60.0, warmup_max_s=30.0)
QUICK_PROBE = Measurement(
    min_count=3, min_duration_s=0.1, max_duration_s=10.0, warmup_min=1, warmup_max_s=2.0, stable_window=2
)


@dataclass(frozen=True)
class ProbeResult:
    """What one probe found; ``images_per_s`` is None when it failed (``reason`` says why)."""

    status: str  # completed or failed
    mode: str
    images_per_s: float | None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "completed" and self.images_per_s is not None


def probe_config(
    framework: str,
    model: str = "simple_cnn",
    *,
    size: int = 28,
    batch_size: int = 128,
    dataset: str = "pathmnist",
    runtime: dict[str, Any] | None = None,
    seed: int = 0,
) -> RunConfig:
    """The run config a probe trains: the official recipe at ``batch_size``, ``runtime`` over the defaults."""
    return parse_config(
        {
            "framework": framework,
            "model": model,
            "seed": seed,
            "data": {"dataset": dataset, "size": size},
            "recipe": {"batch_size": batch_size, "epochs": 1, "evaluate_train": False},
            "runtime": runtime or {},
        }
    )


def probe_job(
    config: RunConfig,
    *,
    mode: Mode = "bare",
    measurement: Measurement = PROBE_MEASUREMENT,
    steps: int = 30,
    flops: bool = True,
    fma_peak_flops_per_s: float | None = None,
) -> dict[str, Any]:
    """The job file of one probe (``steps``: the loop's steps; the bare loop follows ``measurement``)."""
    return {
        "kind": KIND,
        "run_id": str(uuid.uuid4()),
        "mode": mode,
        "config": config.to_dict(),
        "measurement": dataclasses.asdict(measurement),
        "steps": steps,
        "flops": flops,
        "fma_peak_flops_per_s": fma_peak_flops_per_s,
        "start": start_columns(config, kind=KIND),  # the row the parent writes if the probe dies
    }


def run_probe(
    config: RunConfig,
    *,
    mode: Mode = "bare",
    measurement: Measurement = PROBE_MEASUREMENT,
    steps: int = 30,
    flops: bool = True,
    fma_peak_flops_per_s: float | None = None,
    store_path: Path | None = None,
    timeout_s: float = 900.0,
    env: dict[str, str] | None = None,
) -> ProbeResult:
    """Runs one probe in a fresh process and returns what it found (a failure is a result, with a reason).

    ``store_path``: where the probe's row goes (default: a temporary store, removed afterwards).
    """
    from medbench.orchestration.runner import run_job

    job = probe_job(
        config, mode=mode, measurement=measurement, steps=steps, flops=flops,
        fma_peak_flops_per_s=fma_peak_flops_per_s,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="medbench-probe-") as work:
        job["run_dir"] = str(Path(work) / "run")  # the quiet worker's log, and the loop's run folder
        record = run_job(
            job,
            store_path=store_path or Path(work) / "probes.sqlite",
            env=env,
            timeout_s=timeout_s,
            quiet=True,
        )
        log = Path(job["run_dir"]) / f"worker-{job['run_id'][:8]}.log"
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    metrics = dict(record.metrics or {})
    if record.status != "completed":
        metrics.setdefault("log_tail", tail)
    return ProbeResult(
        status=record.status,
        mode=mode,
        images_per_s=metrics.get("images_per_s") if record.status == "completed" else None,
        metrics=metrics,
        reason=record.failure_reason,
    )


# ---- the child ---------------------------------------------------------------------------------------------


def run_probe_job(job: dict[str, Any]) -> int:
    """The worker's entry for ``kind="train_probe"``: measures, records one row, returns an exit code."""
    from medbench.errors import failure_reason
    from medbench.results import ResultsStore

    store = ResultsStore(job["store"])
    run_id = store.start_run(run_id=job["run_id"], **job["start"])
    try:
        config = parse_config(job["config"])
        if job["mode"] == "loop":
            from medbench.bench.loop_probe import measure_loop

            metrics, environment = measure_loop(config, steps=int(job["steps"]), work=Path(job["run_dir"]))
        else:
            metrics, environment = measure_bare(config, Measurement(**job["measurement"]), flops=job["flops"])
    except KeyboardInterrupt:
        store.fail_run(run_id, "interrupted by the user", status="interrupted")
        raise
    except BaseException as err:  # noqa: BLE001  (every failure is a row with a reason)
        trace = traceback.format_exc()
        print(trace, file=sys.stderr)
        store.fail_run(run_id, failure_reason(err), metrics={"traceback": trace[-4000:]})
        return 1
    metrics.update(_flop_figures(metrics, job))
    store.finish_run(run_id, metrics={"mode": job["mode"], **metrics}, environment=environment)
    return 0


def _flop_figures(metrics: dict[str, Any], job: dict[str, Any]) -> dict[str, Any]:
    from medbench.bench.peak import effective_flops, fraction

    achieved = effective_flops(metrics.get("flops_per_image"), metrics.get("images_per_s"), training=True)
    peak = job.get("fma_peak_flops_per_s")
    return {
        "effective_flops_per_s": achieved,
        "fma_peak_flops_per_s": peak,
        "fraction_of_fma_peak": fraction(achieved, peak),
    }


def _setup(config: RunConfig):
    """The framework configured and the model built from the shared initial weights, as a run starts."""
    from medbench.data.registry import get_dataset
    from medbench.frameworks import get_framework
    from medbench.training.inputs import model_inputs
    from medbench.training.start import noise_stream, shared_start

    fw = get_framework(config.framework)
    applied = fw.configure(config.runtime)
    info = get_dataset(config.data.dataset)
    inputs = model_inputs(config, info)
    model = fw.build_model(config.model, seed=config.seed, **inputs, **config.model_options)
    shared_start(config, fw, model)
    return fw, applied, info, inputs, model, noise_stream(config, fw, model)


def _batches(config: RunConfig, info, inputs: dict[str, int], noise) -> list[tuple]:
    """``BATCHES`` random batches as the pipeline yields them: NHWC float32 (official normalisation), labels
    in the dataset's form, and the shared masks of the step (or None)."""
    rng = np.random.default_rng(config.seed)
    n, side, channels = config.recipe.batch_size, inputs["image_size"], inputs["in_channels"]
    out = []
    for i in range(BATCHES):
        images = (rng.random((n, side, side, channels), dtype=np.float32) - 0.5) / 0.5
        if is_multi_label(info):
            labels = rng.integers(0, 2, (n, info.n_classes)).astype(np.float32)
        else:
            labels = rng.integers(0, info.n_classes, (n, 1))
        out.append((images, labels, None if noise is None else noise.masks(0, i, n)))
    return out


def is_multi_label(info) -> bool:
    """Whether the dataset's labels are multi-hot rows (trained with BCE), from its registry entry."""
    from medbench.data.registry import Task

    return info.task is Task.MULTI_LABEL


def _environment(fw, applied: dict[str, Any]) -> dict[str, Any]:
    from medbench.environment import capture_environment

    framework = {"name": fw.name, "versions": fw.versions(), "device": fw.device_name(), "runtime": applied}
    return capture_environment(extra={"framework": framework})


def measure_bare(config: RunConfig, measurement: Measurement, *, flops: bool = True):
    """The bare loop in this process (see the module docstring); returns (metrics, environment)."""
    from medbench.timing import measure_latency, peak_rss_bytes

    fw, applied, info, inputs, model, noise = _setup(config)
    trainer = fw.create_trainer(
        model,
        optimizer=config.recipe.optimizer,
        loss="bce_with_logits" if is_multi_label(info) else "cross_entropy",
        label_smoothing=config.recipe.label_smoothing,
    )
    batches = _batches(config, info, inputs, noise)
    lr = config.recipe.optimizer.lr
    losses: list[float] = []

    def step() -> None:
        images, labels, masks = batches[len(losses) % BATCHES]
        losses.append(trainer.train_step(images, labels, lr=lr, noise=masks).loss)

    fw.synchronize()
    start = time.perf_counter()
    step()  # compilation, autotuning, allocator warm-up: kept apart, as Chrono keeps the first step
    fw.synchronize()
    first_step_s = time.perf_counter() - start
    stats = measure_latency(step, sync=fw.synchronize, **measurement.latency_kwargs(1))
    batch = config.recipe.batch_size
    metrics: dict[str, Any] = {
        "images_per_s": stats.throughput(batch),
        "step_median_ms": stats.p50_ms,
        "first_step_s": first_step_s,
        **stats.to_dict("step_"),
        "first_loss": losses[0],
        "last_loss": losses[-1],
        "applied": applied,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    if flops:
        metrics["flops_per_image"] = fw.flops_per_image(
            trainer.model, image_size=inputs["image_size"], in_channels=inputs["in_channels"]
        )
    return metrics, _environment(fw, applied)
