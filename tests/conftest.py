"""Suite-wide pytest hooks: tests marked with a framework are skipped, with the reason, when it is absent.

Only ``importlib.util.find_spec`` is used: nothing is imported, so the pytest process stays free of
TensorFlow, PyTorch and JAX (framework code runs in subprocesses, see ``tests/frameworks/harness.py``).
"""

from __future__ import annotations

import importlib.util

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


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """medbench's cache (unpacked members, hash sidecars) goes to a folder of the test session, not the
    user's ``~/.cache/medbench``; child processes inherit it. A test may set its own."""
    monkeypatch.setenv("MEDBENCH_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "medbench-cache"))
