"""The inference grid of the BloodMNIST framework study: every engine, simple_cnn and resnet18, 28-224 px.

Runs ``medbench bench``'s session (each cell in a fresh process, engines interleaved, repeats, the
same-answers check before any timing) over the issue's grid and prints the summary table, the scaling fits
and the environment, with the load average before and after: figures from a busy machine are not the
machine's. Results go to the store (``--store``), figures to ``--plot``. Run from the repository root::

    .venv/bin/python benchmarks/bench_inference.py --store bench.sqlite --plot bench-plots
    .venv/bin/python benchmarks/bench_inference.py --quick          # a few minutes: 28 and 64 px, 1 repeat

A full run on a quiet machine takes hours on two CPU cores (torch.compile and XLA compile every cell from
scratch, since each cell is a cold start); ``--quick`` checks the set-up first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from medbench.bench.plan import QUICK_MEASUREMENT, Measurement, make_config
from medbench.bench.session import run_session
from medbench.commands.bench import print_report
from medbench.environment import capture_environment, package_versions

MODELS = ("simple_cnn", "resnet18")
SIZES = (28, 64, 128, 224)
LIBRARIES = (
    "torch",
    "jax",
    "flax",
    "keras",
    "tensorflow-cpu",
    "tensorflow",
    "onnxruntime",
    "onnx",
    "tf2onnx",
)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def print_environment(load_before: str) -> None:
    env = capture_environment()
    cpu = env["cpu"]
    print("environment")
    print(
        f"  cpu        {cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} logical cores, "
        f"cgroup limit {cpu['cgroup_cpu_limit']})"
    )
    print(f"  memory     {env['memory_total_bytes'] / 2**30:.1f} GiB, gpus: {env['gpus'] or 'none'}")
    print(f"  os/python  {env['os']['platform']}, Python {env['python']['version']}")
    versions = {k: v for k, v in package_versions(LIBRARIES).items() if v}
    print("  libraries  " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    print(
        f"  medbench   {env['medbench']['version']} (git {env['medbench']['git_commit'] or 'n/a'}, "
        f"dirty={env['medbench']['git_dirty']})"
    )
    print(f"  load avg   before {load_before}, after {_load()} (1, 5, 15 min)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="28 and 64 px, batch 1 and 8, one repeat, short runs"
    )
    parser.add_argument(
        "--engine", action="append", help="only these engines (repeatable); default all installed"
    )
    parser.add_argument("--model", action="append", help=f"default {' '.join(MODELS)}")
    parser.add_argument("--size", action="append", type=int, help=f"default {' '.join(map(str, SIZES))}")
    parser.add_argument("--batch-size", action="append", type=int, help="default 1 and 64")
    parser.add_argument("--repeats", type=int, default=None, help="default 3")
    parser.add_argument("--threads", type=int, default=None, help="default: every usable core")
    parser.add_argument("--store", type=Path, default=None, help="results store (default ~/.medbench)")
    parser.add_argument("--plot", type=Path, default=None, help="folder for PNG figures")
    parser.add_argument("--work-dir", type=Path, default=None, help="keep weights and ONNX files here")
    args = parser.parse_args(argv)

    config = make_config(
        models=args.model or MODELS,
        sizes=args.size or ((28, 64) if args.quick else SIZES),
        engines=args.engine,
        batch_sizes=args.batch_size or ((1, 8) if args.quick else None),
        repeats=args.repeats if args.repeats is not None else (1 if args.quick else 3),
        measurement=QUICK_MEASUREMENT if args.quick else Measurement(),
        threads=args.threads,
    )
    load_before = _load()
    began = time.time()
    result = run_session(
        config, store_path=args.store, work_dir=args.work_dir, echo=lambda s: print(s, flush=True)
    )
    print()
    print_report(result.records, peak=result.peak, out=Console(width=220))
    print()
    print_environment(load_before)
    print(
        f"session {result.session} in {result.store_path}: {len(result.records)} rows in "
        f"{(time.time() - began) / 60:.1f} min"
    )
    if args.plot:
        from medbench.bench.plots import write_plots

        for path in write_plots(result.records, args.plot):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
