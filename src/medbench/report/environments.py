"""The machines and framework stacks the runs used, each described in a few readable fields and grouped
with the runs that share it; and the signature that says whether two runs' timings compare."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medbench.report.style import framework_sort_key
from medbench.results import RunRecord


def machine_signature(run: RunRecord) -> tuple[str, ...]:
    """What the speed of a run depends on: CPU model, GPUs, and the device the framework used."""
    env = run.environment or {}
    gpus = ",".join(sorted(g.get("name", "?") for g in env.get("gpus") or []))
    device = (env.get("framework") or {}).get("device") or ""
    return ((env.get("cpu") or {}).get("model") or "", gpus, str(device))


@dataclass
class EnvironmentGroup:
    """Runs that share one description (a machine, or a framework stack): the description and who used it."""

    fields: dict[str, str]
    runs: list[RunRecord]

    @property
    def frameworks(self) -> list[str]:
        return sorted({r.framework or "?" for r in self.runs}, key=framework_sort_key)

    @property
    def uses(self) -> list[str]:
        """``training`` first, then the benchmark engines, as first seen."""
        uses = list(dict.fromkeys(stack_use(r) for r in self.runs))
        return sorted(uses, key=lambda u: u != "training")


def _gib(value: Any) -> str:
    return f"{value / 2**30:.0f} GiB" if isinstance(value, (int, float)) else "?"


def _cpu_text(cpu: dict[str, Any]) -> str:
    cores = f"{cpu.get('physical_cores', '?')} cores / {cpu.get('logical_cores', '?')} threads"
    usable = cpu.get("usable_cores")
    limit = cpu.get("cgroup_cpu_limit")
    extra = [f"{usable} usable"] if usable is not None else []
    if limit:
        extra.append(f"cgroup limit {limit:g} CPUs")
    return f"{cpu.get('model') or '?'} ({cores}{'; ' + ', '.join(extra) if extra else ''})"


def machine_fields(env: dict[str, Any]) -> dict[str, str]:
    """A machine in a few readable fields (host, CPU, memory, GPUs, OS, Python, medbench)."""
    gpus = env.get("gpus") or []
    gpu_text = "; ".join(
        f"{g.get('name', '?')} ({g.get('memory_total_mib', '?')} MiB, driver {g.get('driver_version', '?')})"
        for g in gpus
    )
    mb = env.get("medbench") or {}
    commit = (mb.get("git_commit") or "")[:10]
    code = (
        f"{mb.get('version', '?')}"
        + (f" @ {commit}" if commit else "")
        + (" (dirty)" if mb.get("git_dirty") else "")
    )
    return {
        "host": env.get("hostname") or "?",
        "CPU": _cpu_text(env.get("cpu") or {}),
        "memory": _gib(env.get("memory_total_bytes")),
        "GPU": gpu_text or (f"none ({env['gpu_error']})" if env.get("gpu_error") else "none"),
        "OS": (env.get("os") or {}).get("platform") or "?",
        "Python": (env.get("python") or {}).get("version") or "?",
        "medbench": code,
    }


def stack_fields(run: RunRecord) -> dict[str, str] | None:
    """A framework stack: library versions, device, threads, precision and the thread variables set.

    Training rows describe their framework under ``environment["framework"]``; inference-benchmark rows
    describe the engine's under ``environment["engine"]`` (same fields, see ``medbench.bench.cell``). None
    for a row that describes neither (the machine-peak measurement, an older row): a row of "?" says nothing.
    """
    env = run.environment or {}
    fw = env.get("framework") or env.get("engine") or {}
    if not isinstance(fw, dict) or not (fw.get("versions") or fw.get("runtime")):
        return None
    runtime = fw.get("runtime") or {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted((fw.get("versions") or {}).items()))
    # torch/jax/keras apply ``threads``; ONNX Runtime names its own; a bench row also records the request.
    threads = next(
        (runtime.get(k) for k in ("threads", "intra_op_num_threads") if runtime.get(k) is not None),
        env.get("threads"),
    )
    interop = runtime.get("interop_threads")
    thread_text = "?" if threads is None else str(threads) + (f" (+{interop} inter-op)" if interop else "")
    variables = ", ".join(f"{k}={v}" for k, v in sorted((env.get("env") or {}).items()))
    return {
        "framework": run.framework or fw.get("framework") or fw.get("name") or "?",
        "versions": versions or "?",
        "device": str(fw.get("device") or runtime.get("device") or "?"),
        "threads": thread_text,
        "precision": str(runtime.get("precision") or "?"),
        "variables": variables or "-",
    }


def stack_use(run: RunRecord) -> str:
    """What a stack was used for: ``training`` or the benchmark engine's name."""
    if run.kind == "bench":
        engine = (run.environment or {}).get("engine") or {}
        return str(engine.get("name") or (run.config or {}).get("engine") or "inference")
    return "training" if run.kind == "train" else run.kind


def group_environments(runs: Sequence[RunRecord]) -> tuple[list[EnvironmentGroup], list[EnvironmentGroup]]:
    """(machines, framework stacks): runs with the same description grouped, most-used first."""
    machines: dict[str, EnvironmentGroup] = {}
    stacks: dict[str, EnvironmentGroup] = {}
    for run in runs:
        if not run.environment:
            continue
        for table, fields in ((machines, machine_fields(run.environment)), (stacks, stack_fields(run))):
            if fields is None:
                continue
            signature = json.dumps(fields, sort_keys=True)
            table.setdefault(signature, EnvironmentGroup(fields, [])).runs.append(run)

    def order(groups: dict[str, EnvironmentGroup]) -> list[EnvironmentGroup]:
        return sorted(groups.values(), key=lambda g: (-len(g.runs), json.dumps(g.fields, sort_keys=True)))

    return order(machines), sorted(
        stacks.values(), key=lambda g: (framework_sort_key(g.fields["framework"]), -len(g.runs))
    )
