"""The parent side of ``medbench bench``: one session of interleaved cells, each in a fresh process.

A session (its id is the ``experiment`` column of every row it writes):

1. measures the machine's two fp32 ceilings once (a ``bench-peak`` row): the FMA peak (a C kernel) and the
   best framework kernel (matrix products and a 3x3 convolution), each in its own process;
2. per (model, size), in its own process: the reference weights, inputs and PyTorch eager fp32 logits, the
   FLOPs per image and, when an ONNX engine asks for them, the ONNX exports of those same weights;
3. records a ``failed`` row at once for every cell that cannot run (engine not installed, no reference, a
   failed export), so the grid goes on without it;
4. runs the plan (:func:`medbench.bench.plan.plan`: repeat 1 of every cell, then repeat 2 ...) through
   :func:`medbench.orchestration.runner.run_job`, each cell in a fresh process whose environment fixes the threads and,
   for Keras engines, ``KERAS_BACKEND``. A cell that came out wrong or failed is not repeated: both are
   deterministic here, and its row already says why.

The parent imports no deep-learning framework.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medbench.bench.engines import ARTIFACTS, REFERENCE_ENGINE, get_engine
from medbench.bench.peak import describe_peaks, fma_peak
from medbench.bench.plan import BenchConfig, Cell, cell_config, cells, plan
from medbench.errors import WorkerError
from medbench.orchestration.process import call_worker
from medbench.results import ResultsStore, RunRecord

# Fixed in every child so that BLAS and OpenMP pools match the framework's own thread setting.
THREAD_ENV_VARS: tuple[str, ...] = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
PEAK_KIND = "bench-peak"
# How long the kernel-peak job may take (the reference and export jobs take the session's timeout).
PEAK_TIMEOUT_S = 1800.0

Echo = Callable[[str], None]


def thread_env(threads: int) -> dict[str, str]:
    return {name: str(threads) for name in THREAD_ENV_VARS}


def new_session_id() -> str:
    return f"bench-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@dataclass
class ModelSize:
    """What a (model, size) needs before its cells run: the reference (or why there is none), exports."""

    reference: dict[str, Any] | None = None
    error: str | None = None
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class SessionResult:
    session: str
    config: BenchConfig
    records: list[RunRecord]
    peak: dict[str, Any] | None
    prepared: dict[tuple[str, int], ModelSize]
    store_path: Path


def _quiet(_: str) -> None:
    pass


def measure_peak(config: BenchConfig, store: ResultsStore, session: str, env: dict[str, str]) -> dict | None:
    """Both ceilings, recorded as one ``bench-peak`` row (None if neither could be had): the FMA peak of
    the cores the engines use (the C kernel, in its own process) and the best framework kernel (numpy and
    PyTorch, in its own process); see :mod:`medbench.bench.peak`."""
    task_config = {"benchmark": "kernel_peak+fma_peak", "threads": config.threads, "device": config.device}
    run_id = store.start_run(kind=PEAK_KIND, config=task_config, framework="numpy", experiment=session)
    fma = fma_peak(cores=config.threads)
    peak: dict[str, Any] = {"fma_peak_flops_per_s": fma.get("fma_peak_flops_per_s"), "fma_peak": fma}
    try:
        kernels = call_worker(
            {"kind": "kernel_peak", "args": {"threads": config.threads, "device": config.device}},
            env=env,
            timeout_s=PEAK_TIMEOUT_S,
        )
        peak.update(kernels)
    except WorkerError as err:
        peak.update(best_kernel_flops_per_s=None, best_kernel_error=str(err))
    if not peak["fma_peak_flops_per_s"] and not peak["best_kernel_flops_per_s"]:
        store.fail_run(run_id, peak.get("best_kernel_error") or "no peak", metrics=peak)
        return None
    store.finish_run(run_id, metrics=peak)
    return peak


def prepare_model_size(
    config: BenchConfig, model: str, size: int, work: Path, env: dict[str, str]
) -> ModelSize:
    """The reference and the exports one (model, size) needs, each in its own process."""
    wanted = {get_engine(e).artifact for e in config.engines} - {None}
    wanted = {a for a in wanted if not [m for m in ARTIFACTS[a].requires if _missing(m)]}
    out_dir = work / f"{model}_{size}"
    if _missing("torch"):
        return ModelSize(error=f"no reference outputs: {REFERENCE_ENGINE} (the reference) needs torch")
    args = {
        "model": model,
        "image_size": size,
        "in_channels": config.in_channels,
        "num_classes": config.num_classes,
        "n_inputs": max(config.batch_sizes),
        "out_dir": str(out_dir),
        "seed": config.seed,
        "threads": config.threads,
        "export_onnx": "onnx-torch" in wanted,
    }
    try:
        reference = call_worker({"kind": "reference", "args": args}, env=env, timeout_s=config.timeout_s)
    except WorkerError as err:
        return ModelSize(error=f"no reference outputs: {err}")
    prepared = ModelSize(reference=reference, artifacts=dict(reference.get("artifacts", {})))
    for artifact in sorted(wanted - set(prepared.artifacts)):
        spec = ARTIFACTS[artifact]
        export = {
            "artifact": artifact,
            "model": model,
            "weights": reference["weights"],
            "path": str(out_dir / f"{artifact}{spec.suffix}"),
            "image_size": size,
            "in_channels": config.in_channels,
            "num_classes": config.num_classes,
        }
        try:
            prepared.artifacts[artifact] = call_worker(
                {"kind": "export", "args": export}, env={**env, **spec.env}, timeout_s=config.timeout_s
            )
        except WorkerError as err:
            prepared.artifacts[artifact] = {"error": str(err)}
    return prepared


def _missing(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is None


def blocked_reason(cell: Cell, prepared: ModelSize) -> str | None:
    """Why ``cell`` cannot run at all (None if it can)."""
    spec = get_engine(cell.engine)
    missing = spec.missing()
    if missing:
        return f"not installed: {cell.engine} needs {', '.join(missing)}"
    if prepared.reference is None:
        return prepared.error or "no reference outputs"
    if spec.artifact:
        artifact = prepared.artifacts.get(spec.artifact)
        if artifact is None:
            return f"no {spec.artifact} export"
        if "error" in artifact:
            return f"export failed ({spec.artifact}): {artifact['error']}"
    return None


def _start_columns(config: BenchConfig, cell: Cell, session: str) -> dict[str, Any]:
    return {
        "kind": "bench",
        "config": cell_config(config, cell),
        "framework": get_engine(cell.engine).framework,
        "model": cell.model,
        "dataset": config.dataset,
        "size": cell.size,
        "seed": config.seed,
        "experiment": session,
    }


def record_blocked(store: ResultsStore, config: BenchConfig, cell: Cell, session: str, reason: str) -> str:
    run_id = store.start_run(**_start_columns(config, cell, session))
    store.fail_run(run_id, reason, metrics={"outcome": "failed", "repeat": 0})
    return run_id


def cell_job(
    config: BenchConfig, cell: Cell, repeat: int, session: str, prepared: ModelSize, peak: dict | None
) -> dict[str, Any]:
    """The job file of one cell run (see :mod:`medbench.bench.cell`); ``spawned_at`` is added at launch."""
    spec = get_engine(cell.engine)
    reference = prepared.reference or {}
    artifact = prepared.artifacts.get(spec.artifact, {}) if spec.artifact else {}
    return {
        "kind": "bench",
        "run_id": str(uuid.uuid4()),
        "start": _start_columns(config, cell, session),
        "cell": {
            "engine": spec.to_dict(),
            "model": cell.model,
            "image_size": cell.size,
            "in_channels": config.in_channels,
            "num_classes": config.num_classes,
            "batch_sizes": list(config.batch_sizes),
            "threads": config.threads,
            "device": config.device,
            "weights": reference.get("weights"),
            "inputs": reference.get("inputs"),
            "reference": reference.get("reference"),
            "artifact": artifact.get("path"),
            "artifact_info": artifact or None,
            "atol": config.atol,
            "rtol": config.rtol,
            "measurement": asdict(config.measurement),
            "repeat": repeat,
            "flops_per_image": reference.get("flops_per_image"),
            **_ceilings(peak),
            "session": session,
        },
    }


def _ceilings(peak: dict | None) -> dict[str, float | None]:
    """What a cell divides its FLOP/s by; a CPU's FMA peak is no ceiling for engines on a GPU."""
    peak = peak or {}
    on_gpu = peak.get("device") == "cuda"
    return {
        "fma_peak_flops_per_s": None if on_gpu else peak.get("fma_peak_flops_per_s"),
        "best_kernel_flops_per_s": peak.get("best_kernel_flops_per_s"),
    }


def launch(
    job: dict[str, Any], *, store_path: Path, env: dict[str, str], work: Path, timeout_s: float
) -> RunRecord:
    """Runs one cell job in a fresh process through the runner; returns its row."""
    from medbench.orchestration.runner import run_job

    spec_env = job["cell"]["engine"]["env"]
    cache = (
        work / "compile-cache" / job["run_id"]
    )  # fresh per process: every cold start compiles from scratch
    cell_env = {
        **env,
        **spec_env,
        "TORCHINDUCTOR_CACHE_DIR": str(cache),
        "TRITON_CACHE_DIR": str(cache / "triton"),
    }
    job["run_dir"] = str(work / "logs")  # where the runner puts the quiet worker's output
    job["spawned_at"] = time.time()  # the cold start's origin, taken as late as the runner allows
    return run_job(job, store_path=store_path, env=cell_env, timeout_s=timeout_s, quiet=True)


def describe(record: RunRecord) -> str:
    """One progress line for a finished cell run."""
    metrics = record.metrics or {}
    outcome = metrics.get("outcome", "failed" if record.status != "completed" else "ok")
    if outcome == "ok":
        return (
            f"ok  p50 {metrics['latency_p50_ms']:.3g} ms, best {metrics['best_images_per_s']:.4g} img/s "
            f"(batch {metrics['best_batch_size']}), cold start {metrics['cold_start_s']:.3g} s"
        )
    return f"{outcome}: {record.failure_reason}"


def run_session(
    config: BenchConfig,
    *,
    store_path: str | Path | None = None,
    work_dir: str | Path | None = None,
    echo: Echo | None = None,
    session: str | None = None,
) -> SessionResult:
    """Runs a whole benchmark session and returns its rows (see the module docstring).

    Args:
        work_dir: where weights, inputs and exports go; a temporary folder (removed afterwards) by default.
        echo: receives one line per step (progress); silent by default.
    """
    echo = echo or _quiet
    session = session or new_session_id()
    store = ResultsStore(store_path)
    own_work = work_dir is None
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="medbench-bench-"))
    env = thread_env(config.threads)
    runs = plan(config)
    echo(
        f"session {session}: {len(cells(config))} cells x {config.repeats} repeats, {config.threads} threads"
    )
    try:
        peak = measure_peak(config, store, session, env)
        for line in describe_peaks(peak) or ["peaks: failed (fractions of peak will be missing)"]:
            echo(line)
        prepared = {}
        for model in config.models:
            for size in config.sizes:
                echo(f"reference {model} {size}px")
                prepared[(model, size)] = prepare_model_size(config, model, size, work, env)
        skip: dict[Cell, str] = {}
        for cell in cells(config):
            reason = blocked_reason(cell, prepared[(cell.model, cell.size)])
            if reason:
                record_blocked(store, config, cell, session, reason)
                skip[cell] = reason
                echo(f"{cell.engine:<18} {cell.model} {cell.size}px: failed: {reason}")
        for i, run in enumerate(runs, 1):
            if run.cell in skip:
                continue
            job = cell_job(
                config, run.cell, run.repeat, session, prepared[(run.cell.model, run.cell.size)], peak
            )
            record = launch(job, store_path=store.path, env=env, work=work, timeout_s=config.timeout_s)
            line = describe(record)
            if not line.startswith("ok"):
                skip[run.cell] = line
            echo(
                f"[{i}/{len(runs)}] {run.cell.engine:<18} {run.cell.model} {run.cell.size}px "
                f"repeat {run.repeat + 1}: {line}"
            )
    finally:
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    records = store.list_runs(kind="bench", experiment=session)
    return SessionResult(session, config, records, peak, prepared, store.path)
