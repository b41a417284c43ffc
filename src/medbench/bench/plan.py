"""The benchmark's configuration (validated, frozen, stored with every row) and the order of its cells.

A *cell* is one engine x model x image size; it measures all batch sizes in one fresh process. The plan runs
every cell ``repeats`` times, interleaved: repeat 1 of every cell (engines A B C side by side for each model
and size), then repeat 2 of every cell, and so on. A slow drift of the machine (a neighbour's job, thermal
throttling) then touches every engine alike instead of one engine's block, and each cell's repeats are
spread over the whole session, so their spread shows the session's noise. Framework-free.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from medbench.errors import ConfigError

SIZES: tuple[int, ...] = (28, 64, 128, 224)
DEFAULT_MODELS: tuple[str, ...] = ("simple_cnn", "resnet18")
DEFAULT_BATCH_SIZES: tuple[int, ...] = (1, 64)
DEFAULT_DATASET = "bloodmnist"  # sets classes and channels only: the inputs are fixed random images


@dataclass(frozen=True)
class Measurement:
    """How long each batch size is warmed up and timed (see :func:`medbench.timing.measure_latency`).

    Batch 1 (single-stream latency) is timed for ``min_count`` calls; a batch of ``b`` images for
    ``ceil(min_count / b)`` calls (at least 3, or ``min_count`` if that is smaller), so offline throughput
    sees at least as many images as the latency run. Both also run for ``min_duration_s``, and stop at
    ``max_duration_s`` (flagged). Warm-up runs until two windows of ``stable_window`` calls agree within
    ``stable_tolerance``, at least ``warmup_min`` calls, at most ``warmup_max_s``.
    """

    min_count: int = 50
    min_duration_s: float = 2.0
    max_duration_s: float = 60.0
    warmup_min: int = 3
    warmup_max_s: float = 15.0
    stable_window: int = 3
    stable_tolerance: float = 0.05

    def __post_init__(self) -> None:
        if self.min_count < 1 or self.warmup_min < 0 or self.stable_window < 1:
            raise ConfigError(
                "--min-count and the warm-up window must be at least 1 (warm-up min at least 0)."
            )
        if not 0 <= self.min_duration_s <= self.max_duration_s:
            raise ConfigError(
                f"--min-duration ({self.min_duration_s:g} s) must be between 0 and --max-duration "
                f"({self.max_duration_s:g} s)."
            )
        if self.warmup_max_s < 0 or self.stable_tolerance <= 0:
            raise ConfigError("The warm-up cap must be >= 0 s and the stability tolerance > 0.")

    def min_count_for(self, batch_size: int) -> int:
        return max(min(self.min_count, 3), math.ceil(self.min_count / batch_size))

    def latency_kwargs(self, batch_size: int) -> dict[str, Any]:
        """Keyword arguments of :func:`medbench.timing.measure_latency` for this batch size."""
        return {
            "warmup_min": self.warmup_min,
            "warmup_until_stable": True,
            "stable_window": self.stable_window,
            "stable_tolerance": self.stable_tolerance,
            "warmup_max_s": self.warmup_max_s,
            "min_count": self.min_count_for(batch_size),
            "min_duration_s": self.min_duration_s,
            "max_duration_s": self.max_duration_s,
        }


QUICK_MEASUREMENT = Measurement(
    min_count=5, min_duration_s=0.1, max_duration_s=5.0, warmup_min=1, warmup_max_s=1.0, stable_window=2
)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class BenchConfig:
    """Everything a benchmark session measures and how. Build it with :func:`make_config`."""

    models: tuple[str, ...] = DEFAULT_MODELS
    sizes: tuple[int, ...] = SIZES
    engines: tuple[str, ...] = ()  # resolved by make_config: () means every installed engine
    batch_sizes: tuple[int, ...] = DEFAULT_BATCH_SIZES
    repeats: int = 3
    measurement: Measurement = field(default_factory=Measurement)
    threads: int = 1
    device: Literal["auto", "cpu", "gpu"] = "auto"
    dataset: str = DEFAULT_DATASET
    in_channels: int = 3
    num_classes: int = 8
    seed: int = 0
    atol: float = 1e-3
    rtol: float = 1e-3
    timeout_s: float = 1800.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Cell:
    engine: str
    model: str
    size: int


@dataclass(frozen=True)
class PlannedRun:
    cell: Cell
    repeat: int  # 0-based


def _unique(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def make_config(
    *,
    models: Sequence[str] | None = None,
    sizes: Sequence[int] | None = None,
    engines: Sequence[str] | None = None,
    frameworks: Sequence[str] | None = None,
    batch_sizes: Sequence[int] | None = None,
    repeats: int | None = None,
    measurement: Measurement | None = None,
    threads: int | None = None,
    device: str = "auto",
    dataset: str = DEFAULT_DATASET,
    seed: int = 0,
    atol: float = 1e-3,
    rtol: float = 1e-3,
    timeout_s: float = 1800.0,
    quick: bool = False,
) -> BenchConfig:
    """A validated config; what is not given takes the defaults (or the ``quick`` ones).

    ``frameworks`` keeps the engines of those frameworks (``keras-jax`` -> ``keras-jax-jit``), of the given
    ``engines`` or else of every installed one.
    ``quick``: simple_cnn at 28 px, batch sizes 1 and 8, one repeat, a few calls per measurement.
    Batch size 1 is always measured (single-stream latency and cold start rest on it).

    Raises:
        ConfigError: an unknown model, engine or size, or a value out of range, in one readable line.
    """
    from medbench.bench.engines import get_engine, list_engines
    from medbench.data.registry import get_dataset
    from medbench.models import get_model_spec

    models = _unique(models or (("simple_cnn",) if quick else DEFAULT_MODELS))
    for name in models:
        get_model_spec(name)
    sizes = _unique(sizes or ((28,) if quick else SIZES))
    bad = [s for s in sizes if s not in SIZES]
    if bad:
        raise ConfigError(
            f"Image size {bad[0]} is not one MedMNIST publishes.", f"Use {', '.join(map(str, SIZES))}."
        )
    if engines:
        engines = _unique(engines)
        for name in engines:
            get_engine(name)
    else:
        engines = tuple(list_engines(available_only=True))
        if not engines:
            raise ConfigError(
                "No inference engine is installed.", "Install medbench[torch], [jax] or [keras]."
            )
    if frameworks:
        engines = _of_frameworks(engines, _unique(frameworks), explicit=bool(engines))
    batch_sizes = tuple(sorted(set(batch_sizes or ((1, 8) if quick else DEFAULT_BATCH_SIZES)) | {1}))
    if batch_sizes[0] < 1:
        raise ConfigError(f"Batch size {batch_sizes[0]} must be at least 1.")
    repeats = repeats if repeats is not None else (1 if quick else 3)
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats} must be at least 1.")
    cores = usable_cores()
    threads = threads if threads is not None else cores
    if not 1 <= threads <= cores:
        raise ConfigError(
            f"--threads {threads} must be between 1 and the {cores} cores this process may use."
        )
    if device not in ("auto", "cpu", "gpu"):
        raise ConfigError(f"--device {device!r} must be auto, cpu or gpu.")
    if atol < 0 or rtol < 0:
        raise ConfigError("The tolerances --atol and --rtol must be >= 0.")
    if timeout_s <= 0:
        raise ConfigError("--timeout must be positive.")
    info = get_dataset(dataset)
    return BenchConfig(
        models=models,
        sizes=sizes,
        engines=engines,
        batch_sizes=batch_sizes,
        repeats=repeats,
        measurement=measurement or (QUICK_MEASUREMENT if quick else Measurement()),
        threads=threads,
        device=device,  # type: ignore[arg-type]
        dataset=info.flag,
        in_channels=info.n_channels,
        num_classes=info.n_classes,
        seed=seed,
        atol=atol,
        rtol=rtol,
        timeout_s=timeout_s,
    )


def _of_frameworks(
    engines: tuple[str, ...], frameworks: tuple[str, ...], *, explicit: bool
) -> tuple[str, ...]:
    """The engines among ``engines`` whose framework is one of ``frameworks`` (checked against the registry)."""
    from medbench.bench.engines import get_engine, iter_engines

    known = list(dict.fromkeys(spec.framework for spec in iter_engines()))
    unknown = [f for f in frameworks if f not in known]
    if unknown:
        raise ConfigError(f"No inference engine runs on {unknown[0]!r}.", f"Choose from {', '.join(known)}.")
    kept = tuple(e for e in engines if get_engine(e).framework in frameworks)
    if not kept:
        where = "the given --engine values" if explicit else "the installed engines"
        raise ConfigError(
            f"None of {where} runs on {', '.join(frameworks)}.",
            "See `medbench bench --list-engines` for each engine's framework and what it needs installed.",
        )
    return kept


def cells(config: BenchConfig) -> list[Cell]:
    """Every engine x model x size, engines innermost."""
    return [Cell(e, m, s) for m in config.models for s in config.sizes for e in config.engines]


def plan(config: BenchConfig) -> list[PlannedRun]:
    """The order of the session: all cells of repeat 1, then all cells of repeat 2, ... (A B C A B C)."""
    return [PlannedRun(cell, r) for r in range(config.repeats) for cell in cells(config)]


def cell_config(config: BenchConfig, cell: Cell) -> dict[str, Any]:
    """The config stored (and hashed) with each row of ``cell``: the same for all its repeats."""
    from medbench.bench.engines import get_engine

    return {
        "benchmark": "inference",
        "engine": cell.engine,
        "engine_framework": get_engine(cell.engine).framework,
        "model": cell.model,
        "image_size": cell.size,
        "dataset": config.dataset,
        "in_channels": config.in_channels,
        "num_classes": config.num_classes,
        "batch_sizes": list(config.batch_sizes),
        "threads": config.threads,
        "device": config.device,
        "precision": "fp32",
        "seed": config.seed,
        "atol": config.atol,
        "rtol": config.rtol,
        "measurement": dataclasses.asdict(config.measurement),
    }
