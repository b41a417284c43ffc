"""The environment a result was produced in: machine, operating system, Python, libraries, code version.

Stored with every result so that a figure can be traced to the hardware and software behind it. Capturing
never fails because of a missing tool (git, nvidia-smi) or an unusual platform: what cannot be found is
recorded as None. Frameworks add their own versions, threads and device through ``extra``, which keeps this
module free of deep-learning imports.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import medbench

# Variables that change how fast (or on what) a framework runs. Only these names and prefixes are recorded,
# never the whole environment, which may hold secrets.
ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "XLA_FLAGS",
    "CUDA_VISIBLE_DEVICES",
    "NVIDIA_TF32_OVERRIDE",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTORCH_CUDA_ALLOC_CONF",
    "KERAS_BACKEND",
    "TF_ENABLE_ONEDNN_OPTS",
    "TF_GPU_ALLOCATOR",
)
ENV_PREFIXES: tuple[str, ...] = ("TF_NUM_", "JAX_", "XLA_PYTHON_")

PACKAGES: tuple[str, ...] = ("numpy", "scikit-learn", "psutil")

_TIMEOUT_S = 10  # for git and nvidia-smi: a hung tool must not hold up a benchmark run


def capture_environment(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Describes this machine and software as a JSON-serialisable dict.

    Args:
        extra: added at the top level (a key already present is replaced), e.g.
            ``{"framework": {"name": "torch", "versions": ..., "threads": ..., "device": ...}}``.
            Values that JSON cannot hold are stored as their ``str``.

    Returns:
        Keys ``captured_at``, ``hostname``, ``os``, ``python``, ``cpu``, ``memory_total_bytes``, ``gpus``,
        ``gpu_error``, ``medbench``, ``packages``, ``env``, plus those of ``extra``.
    """
    gpus, gpu_error = gpu_info()
    environment: dict[str, Any] = {
        "captured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "os": os_info(),
        "python": python_info(),
        "cpu": cpu_info(),
        "memory_total_bytes": memory_total_bytes(),
        "gpus": gpus,
        "gpu_error": gpu_error,
        "medbench": medbench_info(),
        "packages": package_versions(PACKAGES),
        "env": relevant_env_vars(),
    }
    if extra:
        environment.update(extra)
    # A round trip turns tuples into lists and anything odd into a string: what is returned is what is stored.
    return json.loads(json.dumps(environment, default=str))


def os_info() -> dict[str, str]:
    return {
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version(),
        "machine": platform.machine(),
        "platform": platform.platform(),
    }


def python_info() -> dict[str, str]:
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
    }


def cpu_info() -> dict[str, Any]:
    """CPU model, logical and physical cores, the cores this process may use, and a cgroup CPU limit."""
    import psutil  # a dependency; imported here so importing this module stays cheap

    try:
        usable = len(os.sched_getaffinity(0))  # taskset/containers can allow fewer cores than exist
    except AttributeError:  # not on macOS or Windows
        usable = os.cpu_count()
    return {
        "model": cpu_model(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "cgroup_cpu_limit": cgroup_cpu_limit(),
    }


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            # x86 says "model name"; some ARM kernels only give "Hardware" or "Model".
            if key.strip() in ("model name", "Hardware", "Model") and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def cgroup_cpu_limit(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> float | None:
    """CPUs a cgroup v2 quota allows (e.g. 2.0 in a container limited to two cores), None when unlimited."""
    try:
        quota, period = cpu_max.read_text(encoding="utf-8").split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None


def memory_total_bytes() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def package_versions(names: tuple[str, ...] | list[str]) -> dict[str, str | None]:
    """Installed distribution versions, read from metadata so nothing heavy gets imported."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def relevant_env_vars(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The set variables among :data:`ENV_VARS` and those starting with :data:`ENV_PREFIXES`."""
    environ = dict(os.environ) if environ is None else environ
    return {
        key: value
        for key, value in sorted(environ.items())
        if key in ENV_VARS or any(key.startswith(prefix) for prefix in ENV_PREFIXES)
    }


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str] | None:
    """Runs a tool; None when it is missing, hangs or cannot start."""
    try:
        return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None


def medbench_info() -> dict[str, Any]:
    """medbench's version, where it was imported from, and the git commit of its checkout if it is one."""
    package_dir = Path(medbench.__file__).resolve().parent
    commit, dirty = git_state(package_dir)
    return {
        "version": medbench.__version__,
        "path": str(package_dir),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def git_state(package_dir: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``package_dir``; (None, None) when there is none.

    The check that ``__init__.py`` is tracked makes sure the repository is medbench's own and not one that
    merely encloses an installed copy (a virtual environment inside some other project). ``dirty`` ignores
    untracked files, which are usually data and results rather than code.
    """
    if shutil.which("git") is None:
        return None, None
    tracked = _run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=package_dir)
    if tracked is None or tracked.returncode != 0:
        return None, None
    head = _run(["git", "rev-parse", "HEAD"], cwd=package_dir)
    if head is None or head.returncode != 0:
        return None, None
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=package_dir)
    dirty = None if status is None or status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def gpu_info() -> tuple[list[dict[str, Any]], str | None]:
    """NVIDIA GPUs as nvidia-smi lists them, and why the list is empty when nvidia-smi failed.

    Returns:
        (gpus, error): each GPU has ``name``, ``memory_total_mib``, ``driver_version``; ``error`` is None
        when nvidia-smi ran (or is simply absent: a machine without NVIDIA GPUs is not an error).
    """
    if shutil.which("nvidia-smi") is None:
        return [], None
    query = "name,memory.total,driver_version"
    result = _run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"])
    if result is None:
        return [], "nvidia-smi did not answer"
    if result.returncode != 0:
        return [], (result.stderr or result.stdout).strip()[
            :500
        ] or f"nvidia-smi exited with {result.returncode}"
    return parse_nvidia_smi(result.stdout), None


def parse_nvidia_smi(text: str) -> list[dict[str, Any]]:
    """Parses ``nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader,nounits``."""
    gpus = []
    for line in text.strip().splitlines():
        parts = [part.strip() for part in line.rsplit(",", 2)]  # from the right: a name may hold commas
        if len(parts) != 3:
            continue
        name, memory, driver = parts
        gpus.append(
            {
                "name": name,
                "memory_total_mib": int(memory) if memory.isdigit() else None,
                "driver_version": driver,
            }
        )
    return gpus
