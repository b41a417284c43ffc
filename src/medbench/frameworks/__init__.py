"""Framework back-ends behind one interface (see :mod:`medbench.frameworks.base`).

Each back-end is a sub-package with the same module names (``runtime.py``, ``models.py``, ``convert.py``, ...)
and is imported only when asked for by name, so shared code never pulls a framework in. Keras 3 is one
sub-package and three frameworks, one per Keras backend (``keras`` is Keras on TensorFlow).
"""

from __future__ import annotations

import importlib

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "keras", "keras-jax", "keras-torch")
# framework -> the sub-package of medbench.frameworks that implements it
PACKAGES: dict[str, str] = {"keras-jax": "keras", "keras-torch": "keras"}
# framework -> the extra that installs it (medbench[...]); the Keras backends need Keras and their backend
EXTRAS: dict[str, str] = {"keras-jax": "keras,jax", "keras-torch": "keras,torch"}


def package_of(name: str) -> str:
    """The sub-package implementing framework ``name`` (``keras-jax`` -> ``keras``)."""
    return PACKAGES.get(name, name)


def get_framework(name: str):
    """Imports and returns the back-end called ``name`` (an instance of ``base.Framework``)."""
    from medbench.errors import ConfigError

    if name not in FRAMEWORKS:
        raise ConfigError(f"Unknown framework {name!r}.", f"Choose one of {', '.join(FRAMEWORKS)}.")
    try:
        module = importlib.import_module(f"medbench.frameworks.{package_of(name)}")
    except ImportError as err:
        raise ConfigError(
            f"The {name} back-end cannot be imported ({err}).",
            f"Install it with `pip install 'medbench[{EXTRAS.get(name, name)}]'`.",
        ) from err
    return getattr(module, "FRAMEWORKS", {name: module.FRAMEWORK})[name]
