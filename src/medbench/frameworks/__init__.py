"""Framework back-ends behind one interface (see :mod:`medbench.frameworks.base`).

Each back-end is a sub-package with the same module names (``runtime.py``, ``models.py``, ``convert.py``, ...)
and is imported only when asked for by name, so shared code never pulls a framework in.
"""

from __future__ import annotations

import importlib

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "keras")


def get_framework(name: str):
    """Imports and returns the back-end called ``name`` (an instance of ``base.Framework``)."""
    from medbench.errors import ConfigError

    if name not in FRAMEWORKS:
        raise ConfigError(f"Unknown framework {name!r}.", f"Choose one of {', '.join(FRAMEWORKS)}.")
    try:
        module = importlib.import_module(f"medbench.frameworks.{name}")
    except ImportError as err:
        raise ConfigError(
            f"The {name} back-end cannot be imported ({err}).",
            f"Install it with `pip install 'medbench[{name}]'`.",
        ) from err
    return module.FRAMEWORK
