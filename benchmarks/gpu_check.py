"""One prepared check of medbench's GPU path, sized for a short GPU loan; ``--cpu`` runs it on a CPU.

On a GPU machine (see ``benchmarks/gpu_check.sh``, which installs medbench and its few missing wheels with
no network first), one command checks, each framework in its own process:

1. **Same answers**: every framework (torch, jax, keras-jax, keras-torch) loads the same PyTorch-named
   weights and gives the logits of PyTorch on the CPU (fp32), within a tolerance per precision (TF32 is
   allowed for fp32 on a GPU, as every framework allows it there by default).
2. **Training**: ``simple_cnn`` and ``resnet18`` at 28 and 224 px train for a few dozen steps in fp32, bf16
   and (torch) fp16 with loss scaling; losses stay finite and fall; steady img/s and the GPU memory peak are
   recorded.
3. **The input pipeline against the GPU** (torch and jax): steady train img/s fed by medbench's numpy
   pipeline, against the same trainer step on batches already on the device (goal >= 0.95x), and against
   the official MedMNIST script's loop shape (a torch ``DataLoader`` over PIL images with per-image
   transforms, batch 128), at 28 px and at 224 px (nearest 28 -> 224, as MedMNIST v2's "(224)" rows).
4. **Inference**: the inference benchmark's engines on the device (eager, compiled, jit, ONNX Runtime's
   CUDA provider when it has one), each behind the benchmark's same-answers gate.

It writes ``gpu_check.json`` and ``gpu_check.md`` into ``--out`` (default ``$OUT`` when set) and exits 1
if any *check* failed; performance *goals* are reported, met or missed, without failing the run.

``--cpu`` runs the same code end to end on a CPU in about a minute (simple_cnn at 28 px, a few steps); what
needs a GPU prints "skipped: no GPU". The test suite runs it, so the script cannot rot between loans::

    .venv/bin/python benchmarks/gpu_check.py --cpu --out /tmp/gpu-check
    bash benchmarks/gpu_check.sh                # on the GPU machine, from the repository root

The data are generated (no MedMNIST file travels to a GPU machine): a BloodMNIST-shaped file in the
official npz layout (8 classes, RGB, 28 px) whose classes are learnable, read through medbench's loader.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# Frameworks and the precisions each is checked in (fp16 with loss scaling is PyTorch's GPU recipe).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "torch": ("fp32", "bf16", "fp16"),
    "jax": ("fp32", "bf16"),
    "keras-jax": ("fp32", "bf16"),
    "keras-torch": ("fp32", "bf16"),
}
KERAS_BACKENDS = {"keras-jax": "jax", "keras-torch": "torch"}
# Relative L2 error of the logits, ||out - ref|| / ||ref||, against PyTorch fp32 on the CPU. On a GPU, fp32
# convolutions and matrix products may run in TF32 (10-bit mantissa), which every framework allows there by
# default; bf16 keeps 8 bits, fp16 11.
TOLERANCES: dict[str, dict[str, float]] = {
    "cpu": {"fp32": 1e-4, "bf16": 5e-2, "fp16": 1e-2},
    "gpu": {"fp32": 5e-3, "bf16": 5e-2, "fp16": 1e-2},
}
PIPELINE_GOAL = 0.95  # medbench's pipeline must keep the device at least this busy
DATASET = "bloodmnist"  # shapes only: 8 classes, RGB
NUM_CLASSES, CHANNELS = 8, 3
SCRIPT = Path(__file__).resolve()


@dataclass(frozen=True)
class Plan:
    """What one run checks; :func:`gpu_plan` and :func:`cpu_plan` are the two sizes."""

    device: str  # "gpu" or "cpu"
    frameworks: tuple[str, ...]
    models: tuple[str, ...]
    sizes: tuple[int, ...]
    precisions: dict[str, tuple[str, ...]]
    train_steps: int
    batch_size: int
    pipeline_models: tuple[str, ...]
    pipeline_sizes: tuple[int, ...]
    pipeline_frameworks: tuple[str, ...]
    pipeline_steps: int
    pipeline_rounds: int
    engines: tuple[str, ...]
    engine_batch_sizes: tuple[int, ...]
    train_images: int
    jobs: int  # framework processes at once in the correctness phase (timings run alone)


def gpu_plan(frameworks: tuple[str, ...]) -> Plan:
    return Plan(
        device="gpu",
        frameworks=frameworks,
        models=("simple_cnn", "resnet18"),
        sizes=(28, 224),
        precisions={f: PRECISIONS[f] for f in frameworks},
        train_steps=30,
        batch_size=128,
        pipeline_models=("resnet18",),
        pipeline_sizes=(28, 224),
        pipeline_frameworks=tuple(f for f in ("torch", "jax") if f in frameworks),
        pipeline_steps=40,
        pipeline_rounds=3,
        engines=(
            "torch-eager",
            "torch-compile",
            "jax-jit",
            "keras-jax-jit",
            "keras-torch-eager",
            "onnx-torch",
        ),
        engine_batch_sizes=(1, 128),
        train_images=128 * 48,
        jobs=4,
    )


def cpu_plan(frameworks: tuple[str, ...]) -> Plan:
    return Plan(
        device="cpu",
        frameworks=frameworks,
        models=("simple_cnn",),
        sizes=(28,),
        precisions={f: ("fp32", "bf16") if f == "torch" else ("fp32",) for f in frameworks},
        train_steps=12,
        batch_size=32,
        pipeline_models=("simple_cnn",),
        pipeline_sizes=(28,),
        pipeline_frameworks=tuple(f for f in ("torch", "jax") if f in frameworks),
        pipeline_steps=6,
        pipeline_rounds=1,
        engines=("torch-eager", "jax-jit"),
        engine_batch_sizes=(1, 8),
        train_images=32 * 16,
        jobs=1,
    )


@dataclass
class Report:
    """Checks (pass/fail: any failure fails the run), goals (met/missed) and every figure measured."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    goals: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append({"name": name, "ok": bool(ok), "detail": detail})
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

    def goal(self, name: str, value: float | None, target: float, detail: str) -> None:
        met = value is not None and value >= target
        self.goals.append({"name": name, "value": value, "target": target, "met": met, "detail": detail})
        print(f"{'met ' if met else 'miss'} {name}: {detail}", flush=True)

    def skip(self, what: str, why: str) -> None:
        line = f"{what}: skipped: {why}"
        self.skipped.append(line)
        print(f"skip {line}", flush=True)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.checks if not c["ok"]]


# ---- shared by parent and children --------------------------------------------------------------------------


def rel_error(out: np.ndarray, ref: np.ndarray) -> float:
    """||out - ref|| / ||ref|| in float64; NaN or Inf anywhere is an infinite error."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    if out.shape != ref.shape or not np.isfinite(out).all():
        return math.inf
    return float(np.linalg.norm(out - ref) / max(np.linalg.norm(ref), 1e-30))


def write_dataset(path: Path, *, train: int, seed: int = 0) -> Path:
    """A BloodMNIST-shaped npz in the official layout whose classes a CNN learns within a few dozen steps.

    Each class lights a horizontal band of its own (rows 3k..3k+2) in one channel over uniform noise, so the
    loss falls measurably in a short run whatever the framework; the file goes through medbench's loader.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in (("train", train), ("val", 64), ("test", 64)):
        labels = rng.integers(0, NUM_CLASSES, size=(n, 1)).astype(np.uint8)
        images = rng.integers(0, 120, size=(n, 28, 28, CHANNELS)).astype(np.uint8)
        for k in range(NUM_CLASSES):
            rows = np.flatnonzero(labels[:, 0] == k)
            images[rows, 3 * k : 3 * k + 3, :, k % CHANNELS] = 250
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    np.savez_compressed(path, **arrays)
    return path


def load_data(path: Path, cache: Path):
    from medbench.data.loading import load_dataset

    return load_dataset(DATASET, 28, path=path, cache_dir=cache)


def train_pipeline(data, *, size: int, batch_size: int, seed: int = 0):
    from medbench.data.pipeline import make_pipeline

    return make_pipeline(
        data,
        "train",
        batch_size=batch_size,
        seed=seed,
        drop_last=True,
        resize_to=None if size == 28 else size,
        resize_method="nearest",
    )


def endless_batches(pipeline):
    epoch = 0
    while True:
        yield from pipeline.epoch(epoch)
        epoch += 1


def gpu_peak_reader(framework: str):
    """A function returning the device's peak allocated bytes so far (and resetting it where it can)."""
    if framework in ("torch", "keras-torch"):
        import torch

        if not torch.cuda.is_available():
            return None

        def torch_peak() -> int:
            peak = int(torch.cuda.max_memory_allocated())
            torch.cuda.reset_peak_memory_stats()
            return peak

        return torch_peak
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    return lambda: (device.memory_stats() or {}).get("peak_bytes_in_use")  # the process's peak so far


def configure(framework: str, device: str, precision: str):
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework

    fw = get_framework(framework)
    applied = fw.configure(RuntimeConfig(device=device, precision=precision))
    return fw, applied


def timed_steps(fw, step, batches, n: int) -> tuple[list[float], list[float]]:
    """Runs ``n`` steps, each timed with a device sync on both sides; returns (losses, seconds)."""
    losses, seconds = [], []
    for _ in range(n):
        images, labels = next(batches)
        fw.synchronize()
        start = time.perf_counter()
        losses.append(step(images, labels))
        fw.synchronize()
        seconds.append(time.perf_counter() - start)
    return losses, seconds


def steady_images_per_s(seconds: list[float], batch_size: int, skip: int = 3) -> float:
    """Median steady step: the first ``skip`` steps (compilation, autotuning, warm caches) are left out."""
    steady = seconds[skip:] if len(seconds) > skip else seconds
    return batch_size / statistics.median(steady)


# ---- child tasks (each in a fresh process) ------------------------------------------------------------------


def task_reference(spec: dict[str, Any]) -> dict[str, Any]:
    """PyTorch fp32 on the CPU: the weights every framework loads and the logits it must give."""
    fw, _ = configure("torch", "cpu", "fp32")
    work = Path(spec["work"])
    rng = np.random.default_rng(1)
    out = {}
    for model_name in spec["models"]:
        for size in spec["sizes"]:
            model = fw.build_model(
                model_name, num_classes=NUM_CLASSES, in_channels=CHANNELS, image_size=size, seed=0
            )
            inputs = rng.standard_normal((4, size, size, CHANNELS)).astype(np.float32)
            key = f"{model_name}_{size}"
            np.savez(work / f"{key}_state.npz", **fw.state_dict(model))
            np.savez(work / f"{key}_io.npz", inputs=inputs, logits=fw.predict(model, inputs))
            out[key] = {"params": fw.count_params(model)}
    return out


def task_train(spec: dict[str, Any]) -> dict[str, Any]:
    """One framework in one precision: same answers as the reference, then a short training run per model."""
    from medbench.config import OptimizerConfig

    framework, device, precision = spec["framework"], spec["device"], spec["precision"]
    fw, applied = configure(framework, device, precision)
    work = Path(spec["work"])
    data = load_data(Path(spec["data"]), work / "cache")
    peak = gpu_peak_reader(framework)
    out: dict[str, Any] = {"applied": applied, "device_name": fw.device_name(), "versions": fw.versions()}
    for model_name in spec["models"]:
        for size in spec["sizes"]:
            key = f"{model_name}_{size}"
            model = fw.build_model(
                model_name, num_classes=NUM_CLASSES, in_channels=CHANNELS, image_size=size, seed=0
            )
            with np.load(work / f"{key}_state.npz") as state:
                fw.load_state_dict(model, dict(state))
            with np.load(work / f"{key}_io.npz") as io:
                logits_error = rel_error(fw.predict(model, io["inputs"]), io["logits"])
            trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="adam", lr=1e-3))
            batches = endless_batches(train_pipeline(data, size=size, batch_size=spec["batch_size"]))

            def step(images, labels, trainer=trainer):
                return trainer.train_step(images, labels).loss

            losses, seconds = timed_steps(fw, step, batches, spec["steps"])
            scaler = getattr(trainer, "scaler", None)  # torch's GradScaler: loss scaling in fp16
            out[key] = {
                "logits_rel_error": logits_error,
                "losses": losses,
                "images_per_s": steady_images_per_s(seconds, spec["batch_size"]),
                "first_step_s": seconds[0],
                "gpu_peak_bytes": peak() if peak else None,
                "loss_scaling": bool(scaler.is_enabled()) if scaler is not None else None,
            }
    return out


class OfficialLoopShape:
    """The official MedMNIST script's input path: a torch Dataset of PIL images with per-image transforms.

    As ``train_and_eval_pytorch.py`` does (``transforms.Resize(..., NEAREST)`` for the "(224)" rows, then
    ``ToTensor`` and ``Normalize(mean=[.5], std=[.5])``, a ``DataLoader`` with ``shuffle=True``, batch 128,
    no worker processes). torchvision's transforms are used when installed; otherwise the same arithmetic
    is written out (torchvision cannot share a process with TensorFlow in medbench's own venv).
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, size: int):
        from PIL import Image

        self.images = [Image.fromarray(image) for image in images]
        self.labels = labels.astype(np.int64)
        self.size = size
        try:
            from torchvision import transforms

            steps = [transforms.ToTensor(), transforms.Normalize(mean=[0.5], std=[0.5])]
            if size != 28:
                steps.insert(0, transforms.Resize((size, size), interpolation=Image.NEAREST))
            self.transform = transforms.Compose(steps)
            self.transforms_from = "torchvision"
        except ImportError:
            self.transform = self._transform
            self.transforms_from = "PIL + numpy (torchvision not installed)"

    def _transform(self, image):
        import torch
        from PIL import Image

        if self.size != 28:
            image = image.resize((self.size, self.size), Image.NEAREST)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return (torch.from_numpy(array).permute(2, 0, 1) - 0.5) / 0.5

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), self.labels[i]


def task_pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """Steady train img/s of one framework fed three ways, interleaved in rounds (see the module doc)."""
    from medbench.config import OptimizerConfig

    framework, device, size, batch = spec["framework"], spec["device"], spec["size"], spec["batch_size"]
    fw, applied = configure(framework, device, "fp32")
    data = load_data(Path(spec["data"]), Path(spec["work"]) / "cache")
    model = fw.build_model(
        spec["model"], num_classes=NUM_CLASSES, in_channels=CHANNELS, image_size=size, seed=0
    )
    trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="adam", lr=1e-3))
    pipeline = train_pipeline(data, size=size, batch_size=batch)

    def step(images, labels):
        return trainer.train_step(images, labels).loss

    staged = [pipeline.batch(0, i) for i in range(min(4, len(pipeline)))]
    put = _device_put(framework, fw)
    on_device = [(put(images), labels) for images, labels in staged]
    feeds: dict[str, Any] = {
        "medbench_pipeline": lambda: endless_batches(pipeline),
        "on_device": lambda: _cycle(on_device),
    }
    official = None
    if framework == "torch":
        official = OfficialLoopShape(data["train"].images, data["train"].labels.reshape(-1), size)
        feeds["official_loop"] = lambda: _official_batches(official, batch)
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    timed_steps(fw, step, feeds["on_device"](), 3)  # compile and warm up once, outside every round
    for _ in range(spec["rounds"]):
        for name, feed in feeds.items():
            _, seconds = timed_steps(fw, step, feed(), spec["steps"])
            rates[name].append(steady_images_per_s(seconds, batch, skip=1))
    return {
        "applied": applied,
        "images_per_s": {name: statistics.median(values) for name, values in rates.items()},
        "rounds": rates,
        "official_transforms": official.transforms_from if official else None,
    }


def _device_put(framework: str, fw):
    """Puts an NHWC float32 batch where the trainer's step reads it from, once, outside the timing."""
    if framework == "torch":
        import torch

        device = fw.runtime.device  # the trainer's input path takes a tensor already there as it is
        return lambda images: torch.from_numpy(images).to(device)
    import jax

    return lambda images: jax.device_put(images)


def _cycle(items):
    while True:
        yield from items


def _official_batches(dataset: OfficialLoopShape, batch: int):
    """The official loop's batches, handed to the same trainer step (NCHW viewed as the NHWC it expects)."""
    import torch

    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True)
    while True:
        for images, labels in loader:
            yield images.permute(0, 2, 3, 1), labels.numpy()


TASKS = {"reference": task_reference, "train": task_train, "pipeline": task_pipeline}


def child_main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    result = TASKS[spec["task"]](spec)
    Path(spec["result"]).write_text(json.dumps(result, default=float))
    return 0


# ---- the parent: framework-free -----------------------------------------------------------------------------


def child_env(framework: str | None, device: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Several framework processes share one GPU in the correctness phase: JAX must not take 75% up front.
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    if framework in KERAS_BACKENDS:
        env["KERAS_BACKEND"] = KERAS_BACKENDS[framework]
    if device == "cpu":
        env["JAX_PLATFORMS"] = "cpu"
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def start_child(spec: dict[str, Any], work: Path, name: str) -> tuple[subprocess.Popen, dict[str, Any]]:
    spec = {**spec, "work": str(work), "result": str(work / f"{name}.result.json")}
    spec_path = work / f"{name}.spec.json"
    spec_path.write_text(json.dumps(spec))
    log = open(work / f"{name}.log", "w")  # noqa: SIM115 (closed in finish_child)
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--child", str(spec_path)],
        env=child_env(spec.get("framework"), spec["device"]),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    spec["_log"] = log
    return process, spec


def finish_child(process: subprocess.Popen, spec: dict[str, Any], timeout: float) -> tuple[dict | None, str]:
    """The child's result, or None with the end of its log as the reason."""
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait()
        reason = f"timed out after {timeout:.0f} s"
    else:
        reason = f"exited with code {code}"
    spec["_log"].close()
    result_path = Path(spec["result"])
    if code == 0 and result_path.exists():
        return json.loads(result_path.read_text()), ""
    tail = Path(spec["_log"].name).read_text(errors="replace").strip().splitlines()[-3:]
    return None, f"{reason}: {' | '.join(tail)}"


def run_children(specs: list[tuple[str, dict]], work: Path, *, jobs: int, timeout: float) -> dict:
    """Runs ``(name, spec)`` children, ``jobs`` at a time; returns name -> (result or None, reason)."""
    done: dict[str, tuple[dict | None, str]] = {}
    queue = list(specs)
    running: list[tuple[str, subprocess.Popen, dict]] = []
    while queue or running:
        while queue and len(running) < jobs:
            name, spec = queue.pop(0)
            print(f"     start {name}", flush=True)
            running.append((name, *start_child(spec, work, name)))
        name, process, spec = running.pop(0)
        done[name] = finish_child(process, spec, timeout)
    return done


def check_training(report: Report, plan: Plan, name: str, result: dict | None, reason: str) -> None:
    framework, precision = name.split(".")[1:3]
    if result is None:
        report.check(f"{framework} {precision}", False, f"the process failed: {reason}")
        return
    tolerance = TOLERANCES[plan.device][precision]
    report.results.setdefault("training", {})[f"{framework}.{precision}"] = result
    for model in plan.models:
        for size in plan.sizes:
            r = result[f"{model}_{size}"]
            what = f"{framework} {precision} {model} {size}px"
            report.check(
                f"{what} logits",
                r["logits_rel_error"] <= tolerance,
                f"relative error {r['logits_rel_error']:.2e} vs PyTorch fp32 on the CPU (tolerance {tolerance:g})",
            )
            losses = np.asarray(r["losses"], np.float64)
            k = max(1, min(5, len(losses) // 3))
            falls = bool(np.isfinite(losses).all() and losses[-k:].mean() < losses[:k].mean())
            report.check(
                f"{what} training",
                falls,
                f"loss {losses[:k].mean():.4f} -> {losses[-k:].mean():.4f} over {len(losses)} steps, "
                f"{r['images_per_s']:.0f} img/s steady"
                + (f", GPU peak {r['gpu_peak_bytes'] / 2**20:.0f} MiB" if r.get("gpu_peak_bytes") else ""),
            )
            if framework == "torch" and precision == "fp16" and plan.device == "gpu":
                report.check(f"{what} loss scaling", bool(r["loss_scaling"]), "GradScaler enabled")


def check_pipeline(report: Report, name: str, result: dict | None, reason: str) -> None:
    if result is None:
        report.check(name, False, f"the process failed: {reason}")
        return
    report.results.setdefault("pipeline", {})[name] = result
    rates = result["images_per_s"]
    ratio = rates["medbench_pipeline"] / rates["on_device"]
    report.goal(
        f"{name} pipeline vs on-device",
        ratio,
        PIPELINE_GOAL,
        f"{rates['medbench_pipeline']:.0f} vs {rates['on_device']:.0f} img/s = {ratio:.2f}x (goal >= {PIPELINE_GOAL}x)",
    )
    if "official_loop" in rates:
        speedup = rates["medbench_pipeline"] / rates["official_loop"]
        report.goal(
            f"{name} medbench vs official loop",
            speedup,
            1.0,
            f"{rates['medbench_pipeline']:.0f} vs {rates['official_loop']:.0f} img/s = {speedup:.2f}x "
            f"(official transforms from {result['official_transforms']})",
        )


def run_inference(report: Report, plan: Plan, work: Path) -> None:
    """The inference benchmark's own session (fresh process per cell, same-answers gate before timing)."""
    from medbench.bench.engines import get_engine
    from medbench.bench.plan import Measurement, make_config
    from medbench.bench.session import run_session

    engines = []
    for name in plan.engines:
        spec = get_engine(name)
        if spec.available:
            engines.append(name)
        else:
            report.skip(f"engine {name}", f"not installed ({', '.join(spec.missing())})")
    if not engines:
        report.check("inference", False, "no inference engine is installed")
        return
    measurement = Measurement(
        min_count=10, min_duration_s=0.2, max_duration_s=5.0, warmup_min=2, warmup_max_s=5.0, stable_window=2
    )
    config = make_config(
        models=plan.models,
        sizes=plan.sizes,
        engines=engines,
        batch_sizes=plan.engine_batch_sizes,
        repeats=1,
        measurement=measurement,
        device=plan.device,
        dataset=DATASET,
        # the same-answers gate, elementwise against PyTorch eager fp32 on the same device: TF32 on a GPU
        atol=TOLERANCES[plan.device]["fp32"],
        rtol=TOLERANCES[plan.device]["fp32"],
        timeout_s=300,
    )
    result = run_session(config, store_path=work / "bench.sqlite", work_dir=work / "bench", echo=print)
    rows = []
    for record in result.records:
        metrics = record.metrics or {}
        engine, model, size = (record.config or {}).get("engine"), record.model, record.size
        ok = record.status == "completed" and metrics.get("outcome") == "ok"
        detail = (
            f"p50 {metrics['latency_p50_ms']:.3g} ms, {metrics['best_images_per_s']:.4g} img/s, "
            f"max rel diff {metrics.get('check_max_rel_diff', float('nan')):.1e}"
            + (
                f", GPU peak {metrics['gpu_peak_bytes'] / 2**20:.0f} MiB"
                if metrics.get("gpu_peak_bytes")
                else ""
            )
            if ok
            else (record.failure_reason or "failed")
        )
        report.check(f"inference {engine} {model} {size}px", ok, detail)
        rows.append({"engine": engine, "model": model, "size": size, "ok": ok, "metrics": metrics})
    report.results["inference"] = rows


def environment(plan: Plan) -> dict[str, Any]:
    from medbench.environment import capture_environment, package_versions

    env = capture_environment()
    libraries = (
        "torch",
        "jax",
        "jaxlib",
        "flax",
        "optax",
        "keras",
        "onnxruntime",
        "onnx",
        "numpy",
        "pydantic",
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "device": plan.device,
        "cpu": env["cpu"]["model"],
        "cores": env["cpu"]["usable_cores"],
        "gpus": env["gpus"],
        "python": platform.python_version(),
        "libraries": {k: v for k, v in package_versions(libraries).items() if v},
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def has_gpu() -> bool:
    """A CUDA GPU is visible (nvidia-smi lists one); the parent imports no framework to find out."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def run(plan: Plan, out: Path, *, timeout: float) -> Report:
    report = Report()
    started = time.perf_counter()
    report.results["environment"] = environment(plan)
    report.results["plan"] = asdict(plan)
    if plan.device == "cpu":
        report.skip("GPU and CPU logits, GPU memory peaks, fp16 loss scaling, CUDA engines", "no GPU")
    with tempfile.TemporaryDirectory(prefix="medbench-gpu-check-") as tmp:
        work = Path(tmp)
        data = write_dataset(work / "data.npz", train=plan.train_images)
        print("[1/4] reference weights and logits (PyTorch fp32, CPU)", flush=True)
        base = {"device": plan.device, "data": str(data), "batch_size": plan.batch_size}
        reference = {"task": "reference", "device": "cpu", "models": plan.models, "sizes": plan.sizes}
        [(ref, why)] = run_children([("reference", reference)], work, jobs=1, timeout=timeout).values()
        if ref is None:
            report.check("reference", False, f"the PyTorch reference failed: {why}")
            return finish(report, out, started)
        print("[2/4] same answers and short training runs, every framework and precision", flush=True)
        specs = [
            (
                f"train.{framework}.{precision}",
                {
                    **base,
                    "task": "train",
                    "framework": framework,
                    "precision": precision,
                    "models": plan.models,
                    "sizes": plan.sizes,
                    "steps": plan.train_steps,
                },
            )
            for framework in plan.frameworks
            for precision in plan.precisions[framework]
        ]
        for name, (result, why) in run_children(specs, work, jobs=plan.jobs, timeout=timeout).items():
            check_training(report, plan, name, result, why)
        print("[3/4] the input pipeline against the device (each run alone)", flush=True)
        specs = [
            (
                f"pipeline.{framework}.{model}.{size}",
                {
                    **base,
                    "task": "pipeline",
                    "framework": framework,
                    "model": model,
                    "size": size,
                    "steps": plan.pipeline_steps,
                    "rounds": plan.pipeline_rounds,
                },
            )
            for framework in plan.pipeline_frameworks
            for model in plan.pipeline_models
            for size in plan.pipeline_sizes
        ]
        for name, (result, why) in run_children(specs, work, jobs=1, timeout=timeout).items():
            check_pipeline(report, name, result, why)
        print("[4/4] inference engines behind the same-answers gate", flush=True)
        run_inference(report, plan, work)
    return finish(report, out, started)


def finish(report: Report, out: Path, started: float) -> Report:
    report.results["wall_s"] = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    payload = {**asdict(report), "failed": len(report.failed)}
    (out / "gpu_check.json").write_text(json.dumps(payload, indent=1, default=float))
    (out / "gpu_check.md").write_text(markdown(report))
    print(
        f"\n{len(report.checks) - len(report.failed)}/{len(report.checks)} checks passed, "
        f"{sum(g['met'] for g in report.goals)}/{len(report.goals)} goals met, "
        f"{report.results['wall_s']:.0f} s; summary in {out}/gpu_check.md",
        flush=True,
    )
    return report


def markdown(report: Report) -> str:
    env = report.results.get("environment", {})
    gpus = ", ".join(g.get("name", "?") for g in env.get("gpus") or []) or "none"
    lines = [
        "# medbench GPU check",
        "",
        f"{env.get('date', '?')}; device {env.get('device', '?')}; GPU: {gpus}; CPU: {env.get('cpu', '?')} "
        f"({env.get('cores', '?')} cores); Python {env.get('python', '?')}; load {env.get('load_average', '?')}",
        "",
        "Libraries: " + ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items()),
        "",
        f"**{len(report.checks) - len(report.failed)} of {len(report.checks)} checks passed**, "
        f"{sum(g['met'] for g in report.goals)} of {len(report.goals)} goals met, "
        f"wall time {report.results.get('wall_s', 0):.0f} s.",
        "",
        "| check | result | detail |",
        "|---|---|---|",
    ]
    lines += [f"| {c['name']} | {'ok' if c['ok'] else '**FAIL**'} | {c['detail']} |" for c in report.checks]
    if report.goals:
        lines += ["", "| goal | met | detail |", "|---|---|---|"]
        lines += [
            f"| {g['name']} | {'yes' if g['met'] else '**no**'} | {g['detail']} |" for g in report.goals
        ]
    if report.skipped:
        lines += ["", "Skipped:", ""] + [f"- {line}" for line in report.skipped]
    tolerances = "; ".join(
        f"{device}: " + ", ".join(f"{p} {t:g}" for p, t in values.items())
        for device, values in TOLERANCES.items()
    )
    lines += ["", f"Logit tolerances (relative L2 error vs PyTorch fp32 on the CPU): {tolerances}.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu", action="store_true", help="Run the small CPU version (no GPU needed).")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"))
    parser.add_argument(
        "--frameworks", default=",".join(PRECISIONS), help=f"Comma-separated; default {','.join(PRECISIONS)}."
    )
    parser.add_argument("--timeout", type=float, default=420.0, help="Seconds per child process at most.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args.child)
    frameworks = tuple(f.strip() for f in args.frameworks.split(",") if f.strip())
    unknown = [f for f in frameworks if f not in PRECISIONS]
    from medbench.frameworks import FRAMEWORKS

    absent = [f for f in frameworks if f not in FRAMEWORKS]
    if absent:
        parser.error(f"medbench has no framework {', '.join(absent)} (it has {', '.join(FRAMEWORKS)})")
    if unknown or not frameworks:
        parser.error(
            f"unknown framework(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(PRECISIONS)}"
        )
    if not args.cpu and not has_gpu():
        print(
            "error: no GPU is visible (nvidia-smi lists none). Run with --cpu for the CPU version.",
            file=sys.stderr,
        )
        return 2
    plan = cpu_plan(frameworks) if args.cpu else gpu_plan(frameworks)
    report = run(plan, args.out, timeout=args.timeout)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
