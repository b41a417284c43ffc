"""JAX's ``small_map_conv`` setting: XLA's kernels against the matrix-product formulations, and PyTorch.

Two parts, both on in-memory random batches (no data loading), fp32, each framework out of the box:

* ``ops``: forward + backward of the operations ResNet-18 at 64 px runs on tiny maps (layer4's 3x3
  convolution on 2x2, 512 -> 512; the stride-2 3x3 convolution 4x4 -> 2x2, 256 -> 512; its 1x1
  downsample; the stem's 3x3 stride-2 max-pool on 32x32x64), ``xla`` and ``matmul`` alternating.
* ``step``: medbench's own trainers (Adam, the default recipe) on ResNet-18 at 64 px: JAX with ``xla``,
  JAX with ``matmul`` and PyTorch eager, in two long-lived worker processes (one per framework, as medbench
  runs them), asked for a few steps each in turn, round after round, so a change of load hits all three.

Prints the median ms with its spread over rounds (IQR, min-max), img/s, the ratios, and the environment with
the load average before and after: figures from a busy machine are not the machine's. Run from the repository
root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_small_map.py [--batch 64] [--rounds 5] [--steps 3]
        [--part ops|step|all] [--no-torch] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from medbench.environment import capture_environment, package_versions
from medbench.timing import RepeatSummary

HERE = Path(__file__).resolve()
VARIANTS = ("jax xla", "jax matmul", "torch eager")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def print_environment(load_before: str) -> None:
    env = capture_environment()
    cpu = env["cpu"]
    print("environment")
    print(
        f"  cpu        {cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} logical cores)"
    )
    versions = {k: v for k, v in package_versions(("jax", "jaxlib", "flax", "torch", "numpy")).items() if v}
    print("  libraries  " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(f"  medbench   git {env['medbench']['git_commit'] or 'n/a'} (dirty={env['medbench']['git_dirty']})")
    print(f"  load avg   before {load_before}, after {_load()} (1, 5, 15 min)")


# ---- the workers ---------------------------------------------------------------------------------------


def _batch(batch: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, size, size, 3), np.float32), rng.integers(0, 9, batch).astype(np.int64)


def _trainer(framework: str, size: int, threads: int | None, settings: dict | None = None):
    from medbench.config import OptimizerConfig, RuntimeConfig
    from medbench.frameworks import get_framework

    fw = get_framework(framework)
    fw.configure(RuntimeConfig(threads=threads, settings=settings or {}))  # as runtime.settings in a run
    model = fw.build_model("resnet18", num_classes=9, in_channels=3, image_size=size, seed=0)
    return fw, fw.create_trainer(model, optimizer=OptimizerConfig())


def _timed_steps(fw, trainer, images, labels, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        fw.synchronize()
        start = time.perf_counter()
        trainer.train_step(images, labels)
        fw.synchronize()
        out.append(time.perf_counter() - start)
    return out


def jax_worker(args) -> None:
    images, labels = _batch(args.batch, args.size)
    trainers = {}
    for formulation in ("xla", "matmul"):  # each traced (and compiled) under its own choice
        fw, trainer = _trainer("jax", args.size, args.threads, {"small_map_conv": formulation})
        _timed_steps(fw, trainer, images, labels, 2)  # compile, then one warm step
        trainers[f"jax {formulation}"] = (fw, trainer)
    _serve(lambda cmd: _jax_command(cmd, trainers, images, labels))


def _jax_command(cmd: dict, trainers: dict, images, labels) -> dict:
    from medbench.frameworks.jax import layers

    if cmd["cmd"] == "ops":
        return {"ops": op_times(cmd["batch"], cmd["rounds"])}
    layers.set_small_map_conv(cmd["variant"].split()[1])  # as when it was traced; nothing retraces
    fw, trainer = trainers[cmd["variant"]]
    return {"times": _timed_steps(fw, trainer, images, labels, cmd["steps"])}


def torch_worker(args) -> None:
    images, labels = _batch(args.batch, args.size)
    fw, trainer = _trainer("torch", args.size, args.threads)
    _timed_steps(fw, trainer, images, labels, 2)
    _serve(lambda cmd: {"times": _timed_steps(fw, trainer, images, labels, cmd["steps"])})


def _serve(handle) -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        print(json.dumps(handle(json.loads(line))), flush=True)


# ---- the operations --------------------------------------------------------------------------------------
# (name, input side, in channels, out channels, kernel, stride); "pool" is the stem's max-pool
OPS = (
    ("conv 3x3 2x2 512->512", 2, 512, 512, 3, 1),
    ("conv 3x3 s2 4x4->2x2 256->512", 4, 256, 512, 3, 2),
    ("conv 1x1 s2 4x4->2x2 256->512", 4, 256, 512, 1, 2),
    ("max-pool 3x3 s2 32x32x64", 32, 64, 64, 3, 2),
)


def op_times(batch: int, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Forward + backward (gradients of input and weights) of each op, ms per call, ``xla`` and ``matmul``
    alternating every round."""
    import jax
    import jax.numpy as jnp

    from medbench.frameworks.jax import layers

    rng = np.random.default_rng(0)
    out: dict[str, dict[str, list[float]]] = {}
    for name, side, cin, cout, k, s in OPS:
        x = jnp.asarray(np.maximum(rng.standard_normal((batch, side, side, cin), np.float32), 0))
        w = jnp.asarray(rng.standard_normal((k, k, cin, cout), np.float32) / np.sqrt(k * k * cin))
        programs = {}
        for formulation in ("xla", "matmul"):
            layers.set_small_map_conv(formulation)
            if name.startswith("max-pool"):

                def f(x, w, k=k, s=s):
                    return (layers.max_pool(x, k, s, 1) * w[0, 0, 0]).sum()
            else:

                def f(x, w, k=k, s=s):
                    pads = ((k // 2, k // 2), (k // 2, k // 2))
                    dims = jax.lax.conv_dimension_numbers(x.shape, w.shape, ("NHWC", "HWIO", "NHWC"))
                    return (
                        layers.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=dims) ** 2
                    ).sum()

            program = jax.jit(jax.grad(f, argnums=(0, 1)))
            jax.block_until_ready(program(x, w))  # traced under this formulation, compiled
            programs[formulation] = program
        out[name] = {f: [] for f in programs}
        for _ in range(rounds):
            for formulation, program in programs.items():
                start = time.perf_counter()
                jax.block_until_ready(program(x, w))
                out[name][formulation].append((time.perf_counter() - start) * 1e3)
    layers.set_small_map_conv("xla")
    return out


# ---- the parent --------------------------------------------------------------------------------------


class Worker:
    def __init__(self, kind: str, args):
        cmd = [
            sys.executable,
            str(HERE),
            "--worker",
            kind,
            "--batch",
            str(args.batch),
            "--size",
            str(args.size),
        ]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ask_nothing()

    def ask_nothing(self) -> None:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("a worker died while starting; run it alone to see why")

    def ask(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _fmt(s: RepeatSummary) -> str:
    return f"{s.median:9.1f}  (IQR {s.q25:.1f}-{s.q75:.1f}, range {s.min:.1f}-{s.max:.1f}, n={s.n})"


def report_ops(ops: dict, batch: int) -> None:
    print(
        f"\nforward + backward per call, ms, batch {batch} (median over rounds, xla and matmul alternating)"
    )
    for name, by in ops.items():
        xla, mm = (RepeatSummary.from_values(by[f]) for f in ("xla", "matmul"))
        print(f"  {name:32s} xla {_fmt(xla)}")
        print(f"  {'':32s} matmul {_fmt(mm)}   xla/matmul {xla.median / mm.median:.1f}x")


def report_steps(times: dict[str, list[float]], batch: int) -> None:
    print(f"\nResNet-18 64 px train step, batch {batch}, ms per step (median of per-round medians)")
    summaries = {v: RepeatSummary.from_values(t) for v, t in times.items()}
    torch = summaries.get("torch eager")
    for variant, s in summaries.items():
        ratio = f"   {torch.median / s.median:.2f}x torch eager (speed)" if torch else ""
        print(f"  {variant:12s} {_fmt(s)}  {batch / s.median * 1e3:7.1f} img/s{ratio}")
    if "jax xla" in summaries:
        print(
            f"  matmul speed-up over xla: {summaries['jax xla'].median / summaries['jax matmul'].median:.2f}x"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--op-batch", type=int, default=128, help="batch of the single-op timings")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps per variant per round")
    parser.add_argument("--part", choices=("ops", "step", "all"), default="all")
    parser.add_argument("--no-torch", action="store_true")
    # on a loaded machine PyTorch's OpenMP threads wait for each other: --threads 1 keeps it honest there
    parser.add_argument("--threads", type=int, help="runtime.threads of both frameworks (default: theirs)")
    parser.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        (jax_worker if args.worker == "jax" else torch_worker)(args)
        return 0
    load_before = _load()
    jax = Worker("jax", args)
    torch = None if args.no_torch or args.part == "ops" else Worker("torch", args)
    try:
        if args.part in ("ops", "all"):
            report_ops(jax.ask(cmd="ops", batch=args.op_batch, rounds=args.rounds)["ops"], args.op_batch)
        if args.part in ("step", "all"):
            workers = {"jax xla": jax, "jax matmul": jax, "torch eager": torch}
            times: dict[str, list[float]] = {v: [] for v in VARIANTS if workers[v] is not None}
            for _ in range(args.rounds):
                for variant in times:
                    reply = workers[variant].ask(cmd="step", variant=variant, steps=args.steps)
                    times[variant].append(float(np.median(reply["times"])) * 1e3)
            report_steps(times, args.batch)
    finally:
        for worker in (jax, torch):
            if worker is not None:
                worker.close()
    print()
    print_environment(load_before)
    return 0


if __name__ == "__main__":
    sys.exit(main())
