"""A rough duration of an experiment on a laptop-class CPU (2 cores), before it is run. Framework-free.

The estimate counts the images each trial pushes through its model (training passes, validation every
epoch, the final test and, if asked, train-split scoring) and divides by training throughputs measured
with medbench's own trainers on a 2-core AMD EPYC (AVX-512, fp32, batch 128, 2 threads; issue 12 of the
project). A forward-only pass costs about a third of a training step. Sizes that were not measured scale
from the nearest measured one by pixel count; models without a measurement are scaled from ResNet-18 by
their forward FLOPs when ``medbench models`` has cached them, and are unknown otherwise. Each trial also
pays a start-up (interpreter, framework import, compilation). It is a guide to minutes versus days, not
a prediction: a loaded machine, another CPU or a GPU changes it many times over.
"""

from __future__ import annotations

from collections.abc import Mapping

MACHINE = "2-core laptop-class CPU (fp32)"

# Training images per second, (model, px) -> framework -> img/s, measured as described above.
TRAIN_IMAGES_PER_S: dict[tuple[str, int], dict[str, float]] = {
    ("simple_cnn", 28): {"torch": 2119, "jax": 786, "keras": 2930},
    ("simple_cnn", 64): {"torch": 368, "jax": 139, "keras": 634},
    ("resnet18", 28): {"torch": 114, "jax": 52, "keras": 113},
    ("resnet18", 64): {"torch": 266, "jax": 19, "keras": 225},
}
START_S = 20.0  # per trial: a fresh interpreter, the framework's import and the first compilation
FORWARD_COST = 1 / 3  # a forward pass relative to a training step (forward + backward + update)


def train_images_per_s(
    model: str, size: int, framework: str, *, flops: Mapping[tuple[str, int], float] | None = None
) -> float | None:
    """Training throughput (img/s) on :data:`MACHINE`, or None when nothing supports a guess."""
    fw = framework if framework in ("torch", "jax", "keras") else framework.split("-")[0]
    measured = [s for (m, s) in TRAIN_IMAGES_PER_S if m == model]
    if measured:
        nearest = min(measured, key=lambda s: abs(s - size))
        rate = TRAIN_IMAGES_PER_S[(model, nearest)].get(fw)
        return None if rate is None else rate * (nearest / size) ** 2
    flops = flops or {}
    if (model, size) in flops and ("resnet18", size) in flops:
        reference = train_images_per_s("resnet18", size, fw)
        return None if reference is None else reference * flops[("resnet18", size)] / flops[(model, size)]
    return None


def trial_seconds(config, *, flops: Mapping[tuple[str, int], float] | None = None) -> float | None:
    """Rough seconds for one training trial (a :class:`medbench.config.RunConfig`), or None if unknown."""
    from medbench.data.registry import get_dataset

    rate = train_images_per_s(config.model, config.data.input_size, config.framework, flops=flops)
    if rate is None:
        return None
    recipe = config.recipe
    n = get_dataset(config.data.dataset).n_samples
    per_epoch = n["train"]
    if recipe.max_steps_per_epoch:
        per_epoch = min(per_epoch, recipe.max_steps_per_epoch * recipe.batch_size)
    images = per_epoch * recipe.epochs
    forward = n["val"] * recipe.epochs + n["test"] + (n["train"] if recipe.evaluate_train else 0)
    return START_S + (images + FORWARD_COST * forward) / rate


def bench_seconds(spec) -> float:
    """Rough seconds of an experiment's inference benchmark: per cell and repeat, a cold start and the
    minimum measuring time at each batch size."""
    bench = spec.measure.bench
    if bench is None:
        return 0.0
    engines = len(bench.engines) or len(spec.grid.frameworks)
    cells = engines * len(spec.grid.models) * len(bench.sizes or spec.grid.sizes)
    per_cell = 10.0 + max(len(bench.batch_sizes), 1) * max(bench.min_duration_s, 0.5) * 2
    return cells * bench.repeats * per_cell


def experiment_seconds(
    spec, trials, *, flops: Mapping[tuple[str, int], float] | None = None
) -> tuple[float, int]:
    """(rough seconds, number of trials with no estimate) for the whole experiment."""
    total, unknown = bench_seconds(spec), 0
    for trial in trials if spec.measure.train else []:
        seconds = trial_seconds(trial.config, flops=flops)
        if seconds is None:
            unknown += 1
        else:
            total += seconds
    return total, unknown


def cached_flops() -> dict[tuple[str, int], float]:
    """(model, px) -> forward FLOPs per image from ``medbench models``' cache (torch's count first)."""
    import json

    from medbench.frameworks.describe import cache_path

    try:
        stored = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return {}
    out: dict[tuple[str, int], float] = {}
    for key, entry in sorted(stored.items(), key=lambda kv: not kv[0].startswith("torch|")):
        parts = key.split("|")
        if len(parts) >= 5 and isinstance(entry, dict) and entry.get("flops"):
            out.setdefault((parts[3], int(parts[4].removesuffix("px"))), float(entry["flops"]))
    return out


def human(seconds: float) -> str:
    """``40 s``, ``12 min``, ``3.5 h``, ``2.1 days``: as precise as a rough estimate deserves."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
