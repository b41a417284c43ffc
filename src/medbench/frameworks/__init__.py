"""Framework back-ends behind one interface (see :mod:`medbench.frameworks.base`).

Each back-end is a sub-package with the same module names (``runtime.py``, ``models.py``, ``convert.py``, ...)
and is imported only when asked for by name, so shared code never pulls a framework in. Keras 3 is one
sub-package and three frameworks, one per Keras backend (``keras`` is Keras on TensorFlow).
"""

from __future__ import annotations

import importlib
import importlib.util

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "keras", "keras-jax", "keras-torch")
# framework -> the sub-package of medbench.frameworks that implements it
PACKAGES: dict[str, str] = {"keras-jax": "keras", "keras-torch": "keras"}
# framework -> the extra that installs it (medbench[...]); the Keras backends need Keras and their backend
EXTRAS: dict[str, str] = {"keras-jax": "keras,jax", "keras-torch": "keras,torch"}
# framework -> the top-level modules it needs, found without importing them
REQUIRES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "jax": ("jax", "flax", "optax"),
    "keras": ("keras", "tensorflow"),
    "keras-jax": ("keras", "jax"),
    "keras-torch": ("keras", "torch"),
}


def package_of(name: str) -> str:
    """The sub-package implementing framework ``name`` (``keras-jax`` -> ``keras``)."""
    return PACKAGES.get(name, name)


_BACKENDS: dict[str, object] = {}  # one back-end per framework and process, made on first use


def get_framework(name: str):
    """The back-end of framework ``name`` (a :class:`~medbench.frameworks.base.Backend`), checked importable.

    The framework's modules are only looked for here; the framework itself is imported by the first call
    that needs it, after :meth:`~medbench.frameworks.base.Backend.configure`.
    """
    from medbench.errors import ConfigError
    from medbench.frameworks.base import Backend

    if name not in FRAMEWORKS:
        raise ConfigError(f"Unknown framework {name!r}.", f"Choose one of {', '.join(FRAMEWORKS)}.")
    if name not in _BACKENDS:
        missing = [module for module in REQUIRES[name] if importlib.util.find_spec(module) is None]
        if missing:
            raise ConfigError(
                f"The {name} back-end needs {', '.join(missing)}, which is not installed.",
                f"Install it with `pip install 'medbench[{EXTRAS.get(name, name)}]'`.",
            )
        _BACKENDS[name] = Backend(name, package_of(name))
    return _BACKENDS[name]
