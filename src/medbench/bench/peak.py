"""The machine's fp32 ceilings and the effective FLOP/s held against them; no framework is imported here.

Two ceilings, each labelled wherever it is shown:

- **FMA peak** (theoretical): cores x the clock they actually run at x fp32 FMA lanes per cycle x 2 flops.
  The clock and the lanes are *measured* by a small C kernel shipped with medbench (``native/peak.c``),
  compiled on first use with the system C compiler (``-O2 -march=native``) into
  :func:`medbench.paths.cache_dir` and run on every core at once, so the clock is the all-core clock under
  load, not the nominal frequency (which says nothing about boost or about a VM's host). Without a
  compiler, the nominal frequency and the vector width the CPU advertises are used instead, and every
  figure says "nominal, not measured".
- **Best kernel**: the fastest fp32 kernel an installed framework reaches here (matrix products and a 3x3
  convolution, measured in a child process by :func:`medbench.bench.artifacts.kernel_peak`). A GEMM alone
  is no ceiling: with OpenBLAS pinned to AVX2 kernels, or a library whose convolutions beat its GEMM, a
  "% of peak" over a GEMM flatters every engine.

:func:`effective_flops` turns model FLOPs and images per second into the FLOP/s both are divided by.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from medbench.errors import MedbenchError
from medbench.paths import cache_dir

# Tried in order until one compiles: -mcpu=native is what older Apple clang on arm64 understands.
FLAG_SETS: tuple[tuple[str, ...], ...] = (("-O2", "-march=native"), ("-O2", "-mcpu=native"), ("-O2",))
COMPILERS: tuple[str, ...] = ("cc", "gcc", "clang")
MEASURED = "measured"
NOMINAL = "nominal, not measured"
# Without the kernel, the FMA units per core are unknown: two is what current x86 server and desktop cores
# have for AVX2 (and Zen 4/5 and most Xeons for AVX-512), so it is assumed and said to be.
ASSUMED_FMA_UNITS = 2
TRAINING_FLOPS_FACTOR = 3  # forward, gradient w.r.t. activations, gradient w.r.t. weights


class PeakError(MedbenchError):
    """The FMA kernel could not be compiled or run; the message says why."""


def effective_flops(
    flops_per_image: float | None, images_per_s: float | None, *, training: bool = False
) -> float | None:
    """Model FLOPs per second: forward FLOPs per image x images per second, x3 when training (the forward
    pass and the two gradient products of the backward pass). None when either figure is missing."""
    if not flops_per_image or not images_per_s:
        return None
    return flops_per_image * images_per_s * (TRAINING_FLOPS_FACTOR if training else 1)


def fraction(achieved: float | None, ceiling: float | None) -> float | None:
    """``achieved / ceiling``, or None when either is missing or zero."""
    return achieved / ceiling if achieved and ceiling else None


# ---- the compiled kernel -----------------------------------------------------------------------------------


def kernel_source() -> str:
    return resources.files("medbench.bench").joinpath("native", "peak.c").read_text()


def find_compiler() -> str | None:
    """The C compiler: ``$CC`` if set and found, else the first of cc, gcc, clang on the PATH."""
    names = [shlex.split(os.environ["CC"])[0]] if os.environ.get("CC", "").strip() else []
    for name in [*names, *COMPILERS]:
        path = shutil.which(name)
        if path:
            return path
    return None


def cpu_signature() -> str:
    """What a ``-march=native`` binary depends on: a binary cached on a shared folder must not run on
    another CPU model (it could die of an illegal instruction there)."""
    parts = [platform.system(), platform.machine(), platform.processor()]
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for key in ("model name", "flags", "Features", "CPU part"):
        match = re.search(rf"^{key}\s*:\s*(.*)$", text, re.MULTILINE)
        parts.append(match.group(1) if match else "")
    return "|".join(parts)


def _compiler_version(compiler: str) -> str:
    try:
        out = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr).strip() else "?"


@dataclass(frozen=True)
class Kernel:
    path: Path
    compiler: str
    version: str
    flags: tuple[str, ...]


def build_kernel(compiler: str | None = None, *, folder: Path | None = None) -> Kernel:
    """The FMA kernel's binary, compiled once per (source, compiler, CPU) into the cache folder.

    Raises:
        PeakError: no C compiler, or none of :data:`FLAG_SETS` compiles the kernel.
    """
    compiler = compiler or find_compiler()
    if compiler is None:
        raise PeakError("no C compiler found (cc, gcc, clang or $CC)")
    source = kernel_source()
    version = _compiler_version(compiler)
    key = hashlib.sha256("\0".join([source, compiler, version, cpu_signature()]).encode()).hexdigest()[:16]
    folder = folder or cache_dir() / "native"
    binary = folder / f"peak-{key}"
    flags_file = binary.with_suffix(".flags")
    if binary.exists() and flags_file.exists():
        return Kernel(binary, compiler, version, tuple(flags_file.read_text().split()))
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"peak-{key}.c"
    src.write_text(source)
    errors = []
    for flags in FLAG_SETS:
        tmp = folder / f"peak-{key}.{os.getpid()}.tmp"
        command = [compiler, *flags, "-pthread", "-o", str(tmp), str(src), "-lm"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as err:
            errors.append(f"{' '.join(flags)}: {err}")
            continue
        if done.returncode == 0:
            os.replace(tmp, binary)  # atomic: a concurrent session sees no half-written binary
            flags_file.write_text(" ".join(flags))
            return Kernel(binary, compiler, version, flags)
        tmp.unlink(missing_ok=True)
        errors.append(f"{' '.join(flags)}: {' '.join(done.stderr.strip().splitlines()[-2:])[-300:]}")
    raise PeakError(f"{compiler} could not compile the FMA kernel ({'; '.join(errors)})")


def one_cpu_per_core(cpus: Sequence[int] | None = None) -> list[int]:
    """One logical CPU of each physical core among ``cpus`` (default: those this process may use).

    Hyper-threads share their core's FMA units, so the peak counts cores, not threads. Where the topology
    cannot be read (not Linux), every CPU counts as a core.
    """
    if cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not cpus:
        return list(range(os.cpu_count() or 1))
    chosen, seen = [], set()
    for cpu in cpus:
        siblings = _siblings(cpu)
        if siblings not in seen:
            seen.add(siblings)
            chosen.append(cpu)
    return chosen


def _siblings(cpu: int) -> str:
    topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
    for name in ("core_cpus_list", "thread_siblings_list"):
        try:
            return (topology / name).read_text().strip()
        except OSError:
            continue
    return str(cpu)


def run_kernel(kernel: Kernel, cpus: Sequence[int], *, repeats: int = 20, timeout_s: float = 120.0) -> dict:
    """The kernel's JSON: per thread (one per CPU in ``cpus``, pinned on Linux) its best clock and FMA rate.

    Raises:
        PeakError: the kernel died, timed out or printed no JSON.
    """
    pin = [str(c) for c in cpus] if sys.platform.startswith("linux") else []
    command = [str(kernel.path), str(len(cpus)), str(repeats), *pin]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise PeakError(f"the FMA kernel timed out after {timeout_s:.0f} s") from None
    except OSError as err:
        raise PeakError(f"the FMA kernel could not start: {err}") from None
    if done.returncode != 0:
        raise PeakError(f"the FMA kernel failed (exit code {done.returncode}): {done.stderr.strip()[-300:]}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise PeakError(f"the FMA kernel printed no JSON: {done.stdout.strip()[:200]!r}") from None


def measured_peak(raw: Mapping[str, Any], kernel: Kernel | None = None) -> dict[str, Any]:
    """The FMA peak from the kernel's JSON: per core, clock x (FMA units x vector width) x 2, summed.

    The clock is the one taken while FMAs run beside the add chain (``hz_fma``: cores that clock down for
    wide vectors do so there), else the plain add chain's. The lanes per cycle the kernel measures (FMA
    lanes per second / that clock) are rounded to a whole number of FMA units of the vector width: the
    theoretical peak counts what the hardware has; the unrounded figure is kept beside it.
    """
    threads = raw["threads"]
    width = int(raw["width"])
    clocks = [t.get("hz_fma") or t["hz"] for t in threads]
    measured = [t["fma_lanes_per_s"] / hz for t, hz in zip(threads, clocks, strict=True)]
    units = max(1, round(sum(measured) / len(measured) / width))
    lanes = units * width
    from_clock = sum(hz * lanes * 2 for hz in clocks)
    fma_measured = sum(2 * t["fma_lanes_per_s"] for t in threads)
    # A peak is never below a rate actually reached: on a busy machine the add chain loses time slices the
    # FMA loop did not, the clock reads low, and the measured rate is then the better bound.
    disturbed = fma_measured > 1.05 * from_clock
    return {
        "fma_peak_flops_per_s": max(from_clock, fma_measured),
        "clock_disturbed": disturbed,
        "method": MEASURED,
        "cores": len(threads),
        "clock_ghz": sum(clocks) / len(clocks) / 1e9,
        "clock_ghz_per_core": [hz / 1e9 for hz in clocks],
        "clock_ghz_integer": sum(t["hz"] for t in threads) / len(threads) / 1e9,
        "clock_source": "measured: a chain of dependent integer adds (1 cycle each) beside FMAs, every core "
        "at once",
        "vector": raw["vector"],
        "vector_lanes": width,
        "fma": bool(raw.get("fma", True)),
        "fma_units": units,
        "lanes_per_cycle": lanes,
        "lanes_per_cycle_measured": sum(measured) / len(measured),
        "fma_flops_per_s_measured": fma_measured,
        "repeats": raw.get("repeats"),
        "pinned": all(t.get("pinned") for t in threads),
        "cpus": [t.get("cpu") for t in threads],
        "compiler": f"{kernel.compiler} ({kernel.version})" if kernel else None,
        "flags": " ".join(kernel.flags) if kernel else None,
    }


# ---- without a compiler: what the CPU says about itself ----------------------------------------------------


def _sysctl(name: str) -> str | None:
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _vector_of(features: str, machine: str) -> tuple[str, int, bool]:
    """(name, fp32 lanes, has FMA) of the widest vector ``features`` (CPU flags, lower case) name."""
    words = set(features.lower().replace(".", "_").split())
    if "avx512f" in words:
        return "avx512", 16, True
    if "avx2" in words and ("fma" in words or "fma3" in words):
        return "avx2", 8, True
    if machine.lower() in ("arm64", "aarch64"):
        return "neon", 4, True
    return "scalar", 1, "fma" in words


def nominal_cpu() -> dict[str, Any]:
    """Nominal clock (Hz, or None), feature flags and where they were read, from /proc/cpuinfo and sysfs on
    Linux or ``sysctl`` on macOS."""
    if sys.platform == "darwin":
        hz = _sysctl("hw.cpufrequency_max") or _sysctl("hw.cpufrequency")
        features = " ".join(
            filter(None, (_sysctl("machdep.cpu.features"), _sysctl("machdep.cpu.leaf7_features")))
        )
        return {"hz": float(hz) if hz else None, "features": features, "source": "sysctl hw.cpufrequency"}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
    flags = re.search(r"^(?:flags|Features)\s*:\s*(.*)$", text, re.MULTILINE)
    features = flags.group(1) if flags else ""
    try:  # kHz; ARM's /proc/cpuinfo has no clock at all
        khz = float(Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").read_text())
        return {"hz": khz * 1e3, "features": features, "source": "cpufreq cpuinfo_max_freq"}
    except (OSError, ValueError):
        pass
    if mhz:
        return {"hz": max(mhz) * 1e6, "features": features, "source": "/proc/cpuinfo cpu MHz"}
    return {"hz": None, "features": features, "source": "/proc/cpuinfo (no clock listed)"}


def nominal_peak(cores: int, reason: str) -> dict[str, Any]:
    """The FMA peak from the nominal clock and advertised vector width, labelled "nominal, not measured"."""
    cpu = nominal_cpu()
    vector, width, fma = _vector_of(cpu["features"], platform.machine())
    units = ASSUMED_FMA_UNITS if fma and width > 1 else 1
    lanes = units * width
    hz = cpu["hz"]
    return {
        "fma_peak_flops_per_s": cores * hz * lanes * 2 if hz else None,
        "method": NOMINAL,
        "fallback_reason": reason,
        "cores": cores,
        "clock_ghz": hz / 1e9 if hz else None,
        "clock_source": f"{cpu['source']} ({NOMINAL})",
        "vector": vector,
        "vector_lanes": width,
        "fma": fma,
        "fma_units": units,
        "fma_units_source": f"assumed ({NOMINAL})",
        "lanes_per_cycle": lanes,
        "compiler": None,
    }


def fma_peak(
    *, cores: int | None = None, repeats: int = 20, compiler: str | None = None, folder: Path | None = None
) -> dict[str, Any]:
    """The theoretical fp32 FMA peak of ``cores`` physical cores (default all this process may use):
    measured with the C kernel where a compiler exists, else nominal (see the module docstring).

    Never raises for a missing or failing compiler: the reason is recorded as ``fallback_reason``.
    """
    cpus = one_cpu_per_core()
    cpus = cpus[: max(1, min(cores or len(cpus), len(cpus)))]
    try:
        kernel = build_kernel(compiler, folder=folder)
        return measured_peak(run_kernel(kernel, cpus, repeats=repeats), kernel)
    except PeakError as err:
        return nominal_peak(len(cpus), str(err))


# ---- how the ceilings read ---------------------------------------------------------------------------------


def best_kernel_of(metrics: Mapping[str, Any]) -> float | None:
    """The best-kernel FLOP/s of a peak row or a bench row; an older row has only ``peak_flops_per_s`` (the
    best matrix product), which is what it was."""
    return metrics.get("best_kernel_flops_per_s") or metrics.get("peak_flops_per_s")


def describe_fma_peak(metrics: Mapping[str, Any]) -> str | None:
    """One line: ``FMA peak 525 GFLOP/s = 2 cores x 4.10 GHz (measured) x 32 fp32 lanes (avx512, 2 FMA
    units) x 2``; None for a row without one."""
    info = metrics.get("fma_peak") or {}
    flops = metrics.get("fma_peak_flops_per_s")
    if not flops:
        reason = info.get("fallback_reason")
        return f"FMA peak: unknown ({reason})" if reason else None
    method = info.get("method", MEASURED)
    how = "measured" if method == MEASURED else NOMINAL
    line = (
        f"FMA peak {flops / 1e9:,.0f} GFLOP/s = {info.get('cores')} cores x "
        f"{info.get('clock_ghz') or 0:.2f} GHz "
        f"({how}) x {info.get('lanes_per_cycle')} fp32 lanes ({info.get('vector')}, {info.get('fma_units')} "
        f"FMA units{'' if method == MEASURED else ' assumed'}) x 2"
    )
    if method == MEASURED and info.get("compiler"):
        line += f"; kernel built by {info['compiler'].split(' (')[0]} {info.get('flags', '')}".rstrip()
    elif info.get("fallback_reason"):
        line += f"; {info['fallback_reason']}"
    return line


def describe_best_kernel(metrics: Mapping[str, Any]) -> str | None:
    """One line: ``best kernel 430 GFLOP/s: torch conv3x3 ...``; an old row reads as its matrix product."""
    flops = best_kernel_of(metrics)
    if not flops:
        error = metrics.get("best_kernel_error")
        return f"best kernel: unknown ({error})" if error else None
    source = metrics.get("best_kernel_source") or f"{metrics.get('peak_source', '?')} matmul"
    threads = metrics.get("threads")
    return (
        f"best kernel {flops / 1e9:,.1f} GFLOP/s: {source.replace('_', ' ')} (float32"
        f"{f', {threads} threads' if threads else ''})"
    )


def describe_peaks(metrics: Mapping[str, Any] | None) -> list[str]:
    """The lines that say what "% of FMA peak" and "% of best kernel" were divided by."""
    if not metrics:
        return []
    return [line for line in (describe_fma_peak(metrics), describe_best_kernel(metrics)) if line]
