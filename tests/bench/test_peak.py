"""The two ceilings: the C kernel's measured clock and lanes, the fallback without a compiler, the arithmetic."""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
from pathlib import Path

import pytest
import tomllib

from medbench.bench import peak
from medbench.bench.peak import (
    MEASURED,
    NOMINAL,
    PeakError,
    build_kernel,
    describe_best_kernel,
    describe_fma_peak,
    effective_flops,
    fma_peak,
    measured_peak,
    nominal_peak,
    one_cpu_per_core,
    run_kernel,
)

needs_compiler = pytest.mark.skipif(peak.find_compiler() is None, reason="no C compiler (cc, gcc, clang)")


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    match = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def test_effective_flops_counts_three_forward_passes_per_trained_image():
    assert effective_flops(2.74e9 / 3, 114.0) == pytest.approx(104.12e9)
    assert effective_flops(2.74e9 / 3, 114.0, training=True) == pytest.approx(312.36e9)  # issue 12's figure
    assert effective_flops(None, 100.0) is None and effective_flops(1e9, 0.0) is None


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    if peak.find_compiler() is None:
        pytest.skip("no C compiler (cc, gcc, clang)")
    return build_kernel(folder=tmp_path_factory.mktemp("native"))


@needs_compiler
def test_the_kernel_measures_a_plausible_clock_and_whole_fma_units(kernel):
    cpus = one_cpu_per_core()
    result = measured_peak(run_kernel(kernel, cpus, repeats=10), kernel)
    assert result["method"] == MEASURED and result["cores"] == len(cpus)
    for ghz in (*result["clock_ghz_per_core"], result["clock_ghz_integer"]):
        assert 0.5 < ghz < 6.0
    assert result["vector_lanes"] in (1, 4, 8, 16) and 1 <= result["fma_units"] <= 4
    # what was measured is close to a whole number of FMA units, not something between them (when no other
    # process took the add chain's time slices: on a busy machine the ratio of the two timings means nothing)
    if not result["clock_disturbed"]:
        whole = result["lanes_per_cycle_measured"] == pytest.approx(result["lanes_per_cycle"], rel=0.2)
        if not whole and os.getloadavg()[0] > 0.5:  # another process (an xdist worker) took the FMA chain's
            pytest.skip(
                f"the machine is busy (load {os.getloadavg()[0]:.1f}): the FMA rate is not the core's"
            )
        assert whole, (result["lanes_per_cycle_measured"], result["lanes_per_cycle"])
    expected = sum(result["clock_ghz_per_core"]) * 1e9 * result["lanes_per_cycle"] * 2
    # clock x lanes x 2, unless load made the clock read low: then the FMA rate reached is the peak
    assert result["fma_peak_flops_per_s"] == pytest.approx(max(expected, result["fma_flops_per_s_measured"]))
    assert result["clock_disturbed"] == (result["fma_flops_per_s_measured"] > 1.05 * expected)
    if sys.platform.startswith("linux"):
        assert result["pinned"] and result["cpus"] == cpus
    flags = _cpu_flags()
    if "avx512f" in flags:  # -march=native must have given the kernel the widest vector there is
        assert result["vector"] == "avx512"
    elif {"avx2", "fma"} <= flags:
        assert result["vector"] == "avx2"


@needs_compiler
def test_the_kernel_is_compiled_once_per_compiler_and_cpu(kernel, monkeypatch):
    def no_compiling(command, **kwargs):
        assert "--version" in command, f"compiled again: {command}"
        return peak.subprocess.CompletedProcess(command, 0, kernel.version + "\n", "")

    monkeypatch.setattr(peak.subprocess, "run", no_compiling)
    again = build_kernel(kernel.compiler, folder=kernel.path.parent)
    assert again.path == kernel.path and again.flags == kernel.flags
    assert "-march=native" in kernel.flags or "-mcpu=native" in kernel.flags


@needs_compiler
def test_fma_peak_lands_in_the_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDBENCH_CACHE_DIR", str(tmp_path / "cache"))
    result = fma_peak(cores=1, repeats=2)
    assert result["method"] == MEASURED and result["cores"] == 1
    assert list((tmp_path / "cache" / "native").glob("peak-*.flags"))
    assert "(measured)" in describe_fma_peak(
        {"fma_peak_flops_per_s": result["fma_peak_flops_per_s"], "fma_peak": result}
    )


def _fixed_cpu(monkeypatch, hz=2.5e9, features="fpu sse2 avx avx2 fma"):
    monkeypatch.setattr(peak, "nominal_cpu", lambda: {"hz": hz, "features": features, "source": "fixed"})


def test_without_a_compiler_the_peak_is_nominal_and_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(peak.shutil, "which", lambda name: None)
    _fixed_cpu(monkeypatch)
    result = fma_peak(cores=2, folder=tmp_path)
    assert result["method"] == NOMINAL and "no C compiler" in result["fallback_reason"]
    assert result["cores"] == min(2, len(one_cpu_per_core()))
    # cores x 2.5 GHz x (2 assumed FMA units x 8 AVX2 lanes) x 2
    assert result["fma_peak_flops_per_s"] == pytest.approx(result["cores"] * 2.5e9 * 16 * 2)
    assert "nominal, not measured" in result["clock_source"]
    line = describe_fma_peak({"fma_peak_flops_per_s": result["fma_peak_flops_per_s"], "fma_peak": result})
    assert "2.50 GHz (nominal, not measured)" in line and "FMA units assumed" in line
    assert "no C compiler" in line
    assert not list(tmp_path.iterdir())  # nothing was built


@pytest.mark.skipif(os.name != "posix", reason="the failing compiler is a shell script")
def test_a_compiler_that_fails_falls_back_with_its_error(tmp_path, monkeypatch):
    fake = tmp_path / "cc"
    fake.write_text("#!/bin/sh\necho 'cc: error: unrecognized option' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    _fixed_cpu(monkeypatch, features="avx512f avx2 fma")
    result = fma_peak(cores=1, compiler=str(fake), folder=tmp_path / "native")
    assert result["method"] == NOMINAL and result["vector"] == "avx512" and result["lanes_per_cycle"] == 32
    assert (
        "could not compile" in result["fallback_reason"]
        and "unrecognized option" in result["fallback_reason"]
    )
    with pytest.raises(PeakError, match="could not compile"):
        build_kernel(str(fake), folder=tmp_path / "native")


def test_a_nominal_cpu_without_a_clock_has_no_peak_and_says_why(monkeypatch):
    _fixed_cpu(monkeypatch, hz=None)
    result = nominal_peak(4, "no C compiler found")
    assert result["fma_peak_flops_per_s"] is None
    assert describe_fma_peak({"fma_peak_flops_per_s": None, "fma_peak": result}) == (
        "FMA peak: unknown (no C compiler found)"
    )


def test_the_vector_width_comes_from_the_cpus_flags():
    assert peak._vector_of("fpu avx2 fma avx512f", "x86_64") == ("avx512", 16, True)
    assert peak._vector_of("fpu avx avx2 fma", "x86_64") == ("avx2", 8, True)
    assert peak._vector_of("fpu sse2 avx", "x86_64") == ("scalar", 1, False)
    assert peak._vector_of("fp asimd", "aarch64") == ("neon", 4, True)


def test_the_peak_is_cores_times_the_clock_under_fma_times_whole_units_times_two():
    raw = {
        "vector": "avx512",
        "width": 16,
        "repeats": 3,
        "threads": [  # core 1 clocks down to 3.5 GHz with FMAs beside its adds
            {"cpu": 0, "pinned": True, "hz": 4.0e9, "hz_fma": 4.0e9, "fma_lanes_per_s": 4.0e9 * 31.5},
            {"cpu": 1, "pinned": True, "hz": 4.0e9, "hz_fma": 3.5e9, "fma_lanes_per_s": 3.5e9 * 31.0},
        ],
    }
    result = measured_peak(raw)
    assert result["fma_units"] == 2 and result["lanes_per_cycle"] == 32
    assert result["fma_peak_flops_per_s"] == pytest.approx((4.0e9 + 3.5e9) * 32 * 2)
    assert result["clock_ghz"] == pytest.approx(3.75) and result["clock_ghz_integer"] == pytest.approx(4.0)
    line = describe_fma_peak({"fma_peak_flops_per_s": result["fma_peak_flops_per_s"], "fma_peak": result})
    assert line.startswith("FMA peak 480 GFLOP/s = 2 cores x 3.75 GHz (measured) x 32 fp32 lanes (avx512, 2")


def test_hyperthreads_of_one_core_count_once(monkeypatch):
    siblings = {0: "0,2", 1: "1,3", 2: "0,2", 3: "1,3"}
    monkeypatch.setattr(peak, "_siblings", lambda cpu: siblings[cpu])
    assert one_cpu_per_core([0, 1, 2, 3]) == [0, 1]


def test_the_best_kernel_line_names_the_kernel_and_reads_old_rows():
    new = {"best_kernel_flops_per_s": 4.3e11, "best_kernel_source": "torch_conv3x3", "threads": 2}
    assert describe_best_kernel(new) == "best kernel 430.0 GFLOP/s: torch conv3x3 (float32, 2 threads)"
    old = {"peak_flops_per_s": 1.2e11, "peak_source": "numpy", "threads": 2}  # a row from before
    assert describe_best_kernel(old) == "best kernel 120.0 GFLOP/s: numpy matmul (float32, 2 threads)"
    assert peak.describe_peaks(old) == [describe_best_kernel(old)]
    assert describe_best_kernel({"best_kernel_error": "torch died"}) == "best kernel: unknown (torch died)"


def test_the_c_source_ships_with_the_package():
    assert "fma_lanes_per_s" in peak.kernel_source()
    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("not a source checkout")
    patterns = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]["medbench"]
    assert any(fnmatch.fnmatch("bench/native/peak.c", p) for p in patterns)  # in the wheel too


@pytest.mark.slow
@pytest.mark.torch
def test_the_kernel_peak_job_measures_numpy_and_the_torch_back_ends_kernels():
    """The ``kernel_peak`` job in its worker: numpy here, PyTorch's kernels through its back-end's
    ``kernels`` module (shared code imports no framework), the best of them the ceiling."""
    from medbench.orchestration.process import call_worker

    got = call_worker(
        {"kind": "kernel_peak", "args": {"threads": 1, "device": "cpu", "n": 256}}, timeout_s=600
    )
    wanted = {"numpy_matmul", "torch_matmul", "torch_conv3x3", "torch_conv3x3_channels_last"}
    assert set(got["rates"]) == wanted and got["device"] == "cpu" and got["threads"] == 1
    assert got["best_kernel_source"] in wanted
    assert got["best_kernel_flops_per_s"] == max(r["flops_per_s"] for r in got["rates"].values())
    for rate in got["rates"].values():
        assert rate["calls"] >= 10 and rate["median_flops_per_s"] <= rate["flops_per_s"]
