"""Where a training step's time goes, per framework: the back-ends' own step breakdown and costliest operations.

For each framework (and JAX under both ``small_map_conv`` formulations) a fresh process builds medbench's
model and trainer (Adam, out of the box), takes a few warm-up steps on an in-memory random batch, then
calls exactly what a training run calls (``Backend.step_breakdown`` and ``Backend.top_operations``). Prints
the breakdown in ms (share of the step) and each framework's ``--top`` costliest operations with their
share of all operation time. ``--rounds`` repeats the whole list, interleaved (a fresh process each time),
so a change of load hits every framework. Run from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_profile.py [--model resnet18] [--size 64] [--batch 32]
        [--frameworks torch jax keras] [--rounds 1] [--top 8] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
PARTS = ("host_to_device_ms", "forward_ms", "backward_ms", "optimizer_ms", "other_ms")


def variants(frameworks: list[str]) -> list[tuple[str, str | None]]:
    """(framework, small_map_conv or None): JAX twice, once per formulation."""
    out = []
    for fw in frameworks:
        out += [(fw, "xla"), (fw, "matmul")] if fw == "jax" else [(fw, None)]
    return out


def worker(args) -> None:
    from medbench.config import OptimizerConfig, RuntimeConfig
    from medbench.frameworks import get_framework

    if args.small_map_conv:
        from medbench.frameworks.jax import layers

        layers.set_small_map_conv(args.small_map_conv)  # before the model is traced
    fw = get_framework(args.worker)
    fw.configure(RuntimeConfig(threads=args.threads))
    rng = np.random.default_rng(0)
    images = rng.standard_normal((args.batch, args.size, args.size, 3), np.float32)
    labels = rng.integers(0, 9, args.batch).astype(np.int64)
    model = fw.build_model(args.model, num_classes=9, in_channels=3, image_size=args.size, seed=0)
    trainer = fw.create_trainer(model, optimizer=OptimizerConfig())
    for _ in range(3):  # as a run's profile: three steps in
        trainer.train_step(images, labels)
    breakdown = fw.step_breakdown(trainer, images, labels)
    top = fw.top_operations(trainer, images, labels, top=args.top)
    print(json.dumps({"breakdown": breakdown, "top": top}))


def run_worker(args, framework: str, small_map: str | None) -> dict:
    cmd = [sys.executable, str(HERE), "--worker", framework, "--model", args.model, "--size", str(args.size)]
    cmd += ["--batch", str(args.batch), "--top", str(args.top)]
    cmd += ["--small-map-conv", small_map] if small_map else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-1500:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(framework: str, small_map: str | None) -> str:
    return f"{framework} {small_map}" if small_map else framework


def report(results: dict[str, list[dict]], args) -> None:
    print(
        f"\n{args.model} {args.size} px, batch {args.batch}: step breakdown, ms (share of the step), median"
    )
    print(f"  {'framework':14s} {'step':>9s} " + " ".join(f"{p[:-3]:>16s}" for p in PARTS))
    for name, runs in results.items():
        ok = [r["breakdown"] for r in runs if "breakdown" in r]
        if not ok:
            print(f"  {name:14s} failed: {runs[-1].get('error', '')[-300:]}")
            continue
        step = float(np.median([b["step_ms"] for b in ok]))
        parts = []
        for p in PARTS:
            values = [b[p] for b in ok if isinstance(b.get(p), (int, float))]
            parts.append(f"{np.median(values):8.1f} ({np.median(values) / step:4.0%})" if values else "-")
        print(f"  {name:14s} {step:9.1f} " + " ".join(f"{p:>16s}" for p in parts) + f"   n={len(ok)}")
    for name, runs in results.items():
        last = next((r for r in reversed(runs) if "top" in r), None)
        if last is None:
            continue
        top = last["top"]
        print(f"\n{name}: {top['profiler']}, {top['total_ms']:.1f} ms of operations per step")
        for op in top["operations"]:
            print(
                f"  {op['ms_per_step']:9.1f} ms {op['share']:6.1%}  {op['kind'][:28]:28s} {op['detail'][:70]}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frameworks", nargs="+", default=["torch", "jax", "keras"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--threads", type=int, help="runtime.threads (default: the framework's own)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--small-map-conv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results: dict[str, list[dict]] = {label(*v): [] for v in variants(args.frameworks)}
    for _ in range(args.rounds):
        for framework, small_map in variants(args.frameworks):
            results[label(framework, small_map)].append(run_worker(args, framework, small_map))
    report(results, args)
    from medbench.environment import capture_environment

    env = capture_environment()
    print(f"\ncpu {env['cpu']['model']} ({env['cpu']['usable_cores']} usable cores), git "
          f"{env['medbench']['git_commit']} (dirty={env['medbench']['git_dirty']})")  # fmt: skip
    print(
        f"load avg before {load_before}, after {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
