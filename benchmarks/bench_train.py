"""Training img/s of every framework, out of the box and tuned, as ratios to PyTorch eager; the harness
overhead; effective FLOP/s against the machine's FMA peak.

Cells are (framework, model, size): by default torch, jax, keras, keras-jax and keras-torch x simple_cnn and
resnet18 x 28 and 64 px, batch 128. Every figure is a training probe (:mod:`medbench.bench.train_probe`):
medbench's own trainer, each probe in a fresh process.

1. **Tuned settings**: per cell, ``medbench tune``'s probes (one repeat each) pick the fastest documented
   settings; or ``--tuned-from FILE`` takes them from an experiment's ``[per_framework.NAME.runtime]``
   (what ``medbench tune --write`` wrote); ``--no-tune`` measures out of the box only.
2. **Rounds**: ``--rounds`` times over every cell and variant (out of the box, tuned, and the training
   loop itself), frameworks interleaved, so a drift of the machine does not fall on one cell. Ratios to
   PyTorch eager are taken within a round and summarised over rounds (median, min-max).
   Each probe is written as it ends (``--rows FILE``: one JSON line per probe, with the load average), and
   the tables are printed after every round, so a run cut short keeps what it measured.
3. **Harness overhead**: medbench's end-to-end training loop (``loop`` probe: one epoch of ``--loop-steps``
   steps, no evaluation of the train split, validation paused) against the bare loop over the same trainer
   on in-memory batches, out of the box.

Effective FLOP/s = forward FLOPs per image x 3 (forward and the two products of the backward pass) x img/s,
against the FMA peak measured by :func:`medbench.bench.peak.fma_peak`. Run from the repository root::

    .venv/bin/python benchmarks/bench_train.py                          # hours on two CPU cores
    .venv/bin/python benchmarks/bench_train.py --quick -f torch -m simple_cnn -s 28 --rounds 1
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from medbench.bench.peak import describe_fma_peak, fma_peak
from medbench.bench.train_probe import PROBE_MEASUREMENT, QUICK_PROBE, ProbeResult, probe_config, run_probe
from medbench.bench.tune import run_tune
from medbench.commands.output import Column, OutputFormat, OutputTable, emit, note
from medbench.commands.spread_columns import median_cells, median_columns
from medbench.frameworks import FRAMEWORKS
from medbench.report.runtime_variant import variant_label
from medbench.timing import RepeatSummary

MODELS = ("simple_cnn", "resnet18")
SIZES = (28, 64)
REFERENCE = ("torch", "out of the box")
VARIANTS = ("out of the box", "tuned", "loop")


@dataclass
class Cell:
    framework: str
    model: str
    size: int
    tuned: dict[str, Any] = field(default_factory=dict)  # the tuned runtime fields; {}: out of the box
    results: dict[str, list[ProbeResult | None]] = field(default_factory=lambda: defaultdict(list))

    def variants(self, *, harness: bool) -> list[str]:
        out = ["out of the box"]
        out += ["tuned"] if self.tuned else []
        return out + (["loop"] if harness else [])

    def rates(self, variant: str) -> list[float | None]:
        """img/s per round (None where the probe failed); tuned = out of the box when nothing was better."""
        variant = "out of the box" if variant == "tuned" and not self.tuned else variant
        return [r.images_per_s if r is not None and r.ok else None for r in self.results[variant]]


FORMAT = {"value": "table"}  # --format: lines beside machine output go to stderr (medbench's convention)


def say(line: str) -> None:
    note(line, FORMAT["value"], markup=False)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"


def print_environment() -> None:
    from medbench.environment import capture_environment, package_versions

    env = capture_environment()
    cpu = env["cpu"]
    say(f"cpu: {cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} logical cores)")
    libraries = ("torch", "jax", "flax", "keras", "tensorflow-cpu", "tensorflow")
    versions = {k: v for k, v in package_versions(libraries).items() if v}
    say("libraries: " + ", ".join(f"{k} {v}" for k, v in versions.items()))


def tuned_from_file(path: Path) -> dict[str, dict[str, Any]]:
    """framework -> its ``[per_framework.NAME.runtime]`` fields in an experiment file."""
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    return {fw: (section.get("runtime") or {}) for fw, section in (raw.get("per_framework") or {}).items()}


def pick_tuned(cells: list[Cell], args, measurement) -> None:
    """Each cell's tuned runtime: from ``--tuned-from``, else one tune pass (one repeat per setting)."""
    preset = tuned_from_file(args.tuned_from) if args.tuned_from else None
    for cell in cells:
        if preset is not None:
            cell.tuned = {k: v for k, v in preset.get(cell.framework, {}).items() if k != "threads"}
            continue
        result = run_tune(
            cell.framework, cell.model, size=cell.size, batch_size=args.batch_size, dataset=args.dataset,
            threads=args.threads, repeats=1, measurement=measurement, timeout_s=args.timeout,
            echo=lambda line, c=cell: say(f"  tune {c.framework} {c.model} {c.size}px {line}"),
        )  # fmt: skip
        cell.tuned = result.best_runtime()


def write_row(path: Path | None, cell: Cell, variant: str, round_no: int, result: ProbeResult) -> None:
    """One probe as a JSON line, appended and flushed at once (a run cut short keeps every probe it made)."""
    if path is None:
        return
    row = {
        "framework": cell.framework, "model": cell.model, "size": cell.size, "variant": variant,
        "round": round_no, "runtime": cell.tuned if variant == "tuned" else {}, "status": result.status,
        "images_per_s": result.images_per_s, "reason": result.reason, "load": _load(),
        "flops_per_image": result.metrics.get("flops_per_image"),
    }  # fmt: skip
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def run_rounds(cells: list[Cell], args, measurement, peak: float | None) -> None:
    """``args.rounds`` passes over every (cell, variant), frameworks interleaved within each pass; the
    tables so far after each pass but the last (human format only: machine formats get one document)."""
    order = sorted(cells, key=lambda c: (c.model, c.size, FRAMEWORKS.index(c.framework)))
    for r in range(args.rounds):
        for variant in VARIANTS:
            for cell in order:
                if variant not in cell.variants(harness=not args.no_harness):
                    continue
                runtime = {**({"threads": args.threads} if args.threads else {})}
                runtime.update(cell.tuned if variant == "tuned" else {})
                config = probe_config(cell.framework, cell.model, size=cell.size, batch_size=args.batch_size,
                                      dataset=args.dataset, runtime=runtime)  # fmt: skip
                result = run_probe(
                    config, mode="loop" if variant == "loop" else "bare", measurement=measurement,
                    steps=args.loop_steps, flops=variant != "loop", fma_peak_flops_per_s=peak,
                    timeout_s=args.timeout,
                )  # fmt: skip
                cell.results[variant].append(result)
                write_row(args.rows, cell, variant, r + 1, result)
                rate = f"{result.images_per_s:,.0f} img/s" if result.ok else f"failed: {result.reason}"
                where = f"{cell.framework} {cell.model} {cell.size}px {variant}"
                say(f"  round {r + 1}/{args.rounds} {where}: {rate}")
        if r + 1 < args.rounds and args.format == "table":
            say(f"after round {r + 1} of {args.rounds}:")
            emit(result_tables(cells, args, peak), args.format)


def result_tables(cells: list[Cell], args, peak: float | None) -> list[OutputTable]:
    return [speed_table(cells, peak)] + ([] if args.no_harness else [overhead_table(cells)])


def _summary(values: list[float | None]) -> RepeatSummary | None:
    kept = [v for v in values if v is not None]
    return RepeatSummary.from_values(kept) if kept else None


def _per_round_ratio(mine: list[float | None], theirs: list[float | None]) -> RepeatSummary | None:
    return _summary([a / b if a and b else None for a, b in zip(mine, theirs, strict=False)])


def _flops(cell: Cell, variant: str) -> float | None:
    variant = "out of the box" if variant == "tuned" and not cell.tuned else variant
    done = [r for r in cell.results[variant] if r is not None and r.ok]
    return done[0].metrics.get("flops_per_image") if done else None


def speed_table(cells: list[Cell], peak: float | None) -> OutputTable:
    """img/s per (model, size, framework variant) with spread, its ratio to PyTorch eager within each round,
    and effective training FLOP/s."""
    table = OutputTable(
        "training img/s: median over rounds (min-max); ratio to PyTorch eager taken within each round",
        [
            Column("model"),
            Column("size", "int"),
            Column("framework"),
            Column("variant"),
            *median_columns("img/s", "images_per_s", 0),
            *median_columns("x torch eager", "ratio", 2, spread_prefix="ratio "),
            Column("GFLOP/s", "float", 1, key="effective_gflops_per_s"),
            Column("of FMA peak", "percent", 1, key="fraction_of_fma_peak_pct"),
        ],  # fmt: skip
        key="training",
    )
    by_key = {(c.framework, c.model, c.size): c for c in cells}
    for cell in sorted(cells, key=lambda c: (c.model, c.size, FRAMEWORKS.index(c.framework))):
        reference = by_key.get((REFERENCE[0], cell.model, cell.size))
        for variant in ("out of the box", "tuned"):
            if variant == "tuned" and not cell.tuned:
                continue
            rates = cell.rates(variant)
            s = _summary(rates)
            ratio = _per_round_ratio(rates, reference.rates(REFERENCE[1])) if reference else None
            flops = _flops(cell, variant)
            gflops = flops * 3 * s.median / 1e9 if flops and s else None
            label = variant_label(cell.framework, cell.tuned) if variant == "tuned" else cell.framework
            table.add_row(
                cell.model, cell.size, label, variant,
                *median_cells(s), *median_cells(ratio),
                gflops, gflops * 1e9 / peak if gflops and peak else None,
            )  # fmt: skip
    return table


def overhead_table(cells: list[Cell]) -> OutputTable:
    """The training loop's end-to-end img/s over the bare loop's, out of the box, per round."""
    table = OutputTable(
        "harness overhead: medbench's training loop vs the bare loop over the same trainer (out of the box)",
        [
            Column("model"),
            Column("size", "int"),
            Column("framework"),
            Column("loop img/s", "float", 0, key="loop_images_per_s"),
            # the loop's steps alone (its Chrono's steady steps): loop img/s below it is data and bookkeeping
            Column("loop steps img/s", "float", 0, key="loop_steps_images_per_s"),
            Column("bare img/s", "float", 0, key="bare_images_per_s"),
            *median_columns("loop / bare", "ratio", 3),
        ],  # fmt: skip
        key="overhead",
    )
    for cell in sorted(cells, key=lambda c: (c.model, c.size, FRAMEWORKS.index(c.framework))):
        loop, bare = cell.rates("loop"), cell.rates("out of the box")
        if not loop:
            continue
        ratio, sl, sb = _per_round_ratio(loop, bare), _summary(loop), _summary(bare)
        steps = _summary(
            [r.metrics.get("steady_images_per_s") if r and r.ok else None for r in cell.results["loop"]]
        )
        table.add_row(
            cell.model, cell.size, cell.framework, sl.median if sl else None, steps.median if steps else None,
            sb.median if sb else None,
            *median_cells(ratio),
        )  # fmt: skip
    return table


def parse_args(argv: list[str] | None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-f", "--framework", action="append", choices=FRAMEWORKS, help="default: all five")
    parser.add_argument("-m", "--model", action="append", help=f"default: {' '.join(MODELS)}")
    parser.add_argument("-s", "--size", action="append", type=int, help="default: 28 64")
    parser.add_argument("-b", "--batch-size", type=int, default=128)
    parser.add_argument(
        "--dataset", default="pathmnist", help="sets classes and channels (inputs are random)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="passes over every cell (default 3)")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: the framework's)"
    )
    parser.add_argument("--quick", action="store_true", help="a few steps per probe: checks the set-up")
    parser.add_argument("--tuned-from", type=Path, help="tuned settings from this experiment's per_framework")
    parser.add_argument("--no-tune", action="store_true", help="out of the box only")
    parser.add_argument("--no-harness", action="store_true", help="skip the training-loop probes")
    parser.add_argument("--loop-steps", type=int, default=50, help="steps of the training-loop probe")
    parser.add_argument("--no-peak", action="store_true", help="skip measuring the FMA peak")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a probe is killed")
    parser.add_argument("--rows", type=Path, help="append each probe to this file as a JSON line")
    parser.add_argument("--format", default="table", choices=[f.value for f in OutputFormat])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    FORMAT["value"] = args.format
    load_before = _load()
    print_environment()
    measurement = QUICK_PROBE if args.quick else PROBE_MEASUREMENT
    cells = [
        Cell(fw, model, size)
        for fw in args.framework or FRAMEWORKS
        for model in args.model or MODELS
        for size in args.size or SIZES
    ]
    peak_info = {} if args.no_peak else fma_peak(cores=args.threads)
    peak = peak_info.get("fma_peak_flops_per_s")
    if not args.no_tune:
        pick_tuned(cells, args, measurement)
    run_rounds(cells, args, measurement, peak)
    emit(result_tables(cells, args, peak), args.format)
    for cell in cells:
        if cell.tuned:
            say(f"tuned {cell.framework} {cell.model} {cell.size}px: {cell.tuned}")
    if peak_info:
        say(describe_fma_peak({"fma_peak_flops_per_s": peak, "fma_peak": peak_info}) or "FMA peak: unknown")
    say(
        f"batch {args.batch_size}, {args.rounds} round(s), threads {args.threads or 'framework default'}, "
        f"measurement {'quick' if args.quick else 'probe'}; load avg before {load_before}, after {_load()}"
    )
    ok = any(r is not None and r.ok for c in cells for rs in c.results.values() for r in rs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
