"""Suite-wide pytest hooks: tests marked with a framework are skipped, with the reason, when it is absent.

Only ``importlib.util.find_spec`` is used: nothing is imported, so the pytest process stays free of
TensorFlow, PyTorch and JAX (framework code runs in subprocesses, see ``tests/frameworks/harness.py``).
"""

from __future__ import annotations

import importlib.util
import os

import pytest

# marker -> the import names it needs
FRAMEWORK_MODULES = {
    "torch": ("torch", "safetensors"),
    "jax": ("jax", "flax", "optax"),
    "keras": ("keras", "tensorflow", "h5py"),
    "keras_jax": ("keras", "jax", "h5py"),
    "keras_torch": ("keras", "torch", "h5py"),
}


def missing_modules(marker: str) -> list[str]:
    return [name for name in FRAMEWORK_MODULES[marker] if importlib.util.find_spec(name) is None]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cache: dict[str, list[str]] = {}
    for item in items:
        for marker in FRAMEWORK_MODULES:
            if item.get_closest_marker(marker) is None:
                continue
            missing = cache.setdefault(marker, missing_modules(marker))
            if missing:
                extra = {"keras_jax": "keras,jax", "keras_torch": "keras,torch"}.get(marker, marker)
                reason = (
                    f"needs {marker}: {', '.join(missing)} not installed (pip install 'medbench[{extra}]')"
                )
                item.add_marker(pytest.mark.skip(reason=reason))
    _assign_xdist_groups(items)


# Session fixtures of tests/frameworks that start the long-lived framework workers (conftest there): the
# tests using them share one xdist worker, so ``-n 2`` starts those workers once, not once per process.
# (``ported``, ``job_for`` and ``ported_slow`` reach the job fixtures through request.getfixturevalue.)
_FRAMEWORK_JOB_FIXTURES = frozenset(
    {"reference", "ported_jobs", "ported_extra_jobs", "slow_reference", "ported_slow_jobs"}
    | {"ported", "job_for", "ported_slow"}
)


def _assign_xdist_groups(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup`` (``make test``): a test runs in the xdist worker of its group,
    which is the framework workers' group or else its file, so module and session fixtures (a trained
    reference run, a framework's compiled steps) are made once, as in a serial run."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        uses_jobs = _FRAMEWORK_JOB_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        group = "framework-jobs" if uses_jobs else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """medbench's cache (unpacked members, hash sidecars) goes to a folder of the test session, not the
    user's ``~/.cache/medbench``; child processes inherit it. A test may set its own."""
    monkeypatch.setenv("MEDBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "medbench-cache"))


@pytest.fixture(scope="session", autouse=True)
def _jax_compilation_cache(tmp_path_factory: pytest.TempPathFactory):
    """One persistent XLA compilation cache for the session's JAX and Keras-on-JAX children: the suite
    compiles the same small programs (simple_cnn's steps at 28 px, batch 32) in dozens of fresh processes,
    and a cache hit halves such a child's time. It starts empty with each session, so a test still sees a
    first compilation, and it is the tests' choice only: medbench never sets it, since compile time is one of
    the things it measures. A user's own ``JAX_COMPILATION_CACHE_DIR`` is left alone."""
    with pytest.MonkeyPatch.context() as patch:
        if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
            patch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))
            # every program, however quick to compile (JAX caches only those over 1 s by default)
            patch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        yield
