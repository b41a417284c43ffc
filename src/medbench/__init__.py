"""medbench: the same model, the same batches, the same recipe in PyTorch, JAX and Keras on MedMNIST.

The Python API (see :mod:`medbench.api`): :func:`train`, :func:`resume`, :func:`evaluate`,
:func:`run_experiment`, :func:`plan_experiment`, :func:`load_results`, :func:`make_config`. They are imported
on first use, so ``import medbench`` stays fast and framework-free.
"""

from __future__ import annotations

__version__ = "0.1.0"

_API = ("train", "resume", "evaluate", "run_experiment", "plan_experiment", "load_results", "make_config")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> object:  # no import here: `import medbench` runs nothing it need not
    if name in _API:
        from medbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'medbench' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
