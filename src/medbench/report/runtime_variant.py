"""How a run's framework reads in a report: out of the box, or tuned (from its stored runtime config).

A tuned run trains the same model as an untuned one (compilation and the catalog's settings leave the
mathematics alone, see :mod:`medbench.frameworks.settings`), so it belongs to the same comparison, as a row
of its own: ``torch`` beside ``torch (tuned: compile)``. :data:`TUNING_FIELDS` are the config fields a
comparison therefore ignores; :func:`framework_label` is the row a run goes into.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medbench.frameworks.settings import tuned_choices

TUNING_FIELDS: tuple[tuple[str, ...], ...] = (("runtime", "compile"), ("runtime", "settings"))


def variant_label(framework: str, runtime: Mapping[str, Any] | None) -> str:
    """``framework``, or ``framework (tuned: a, b)`` for the choices of ``runtime`` (a stored config's
    ``runtime`` section) that differ from its out-of-the-box behaviour."""
    words = tuned_choices(runtime or {}, framework)
    return f"{framework} (tuned: {', '.join(words)})" if words else framework


def framework_label(run: Any) -> str:
    """The report row of a stored run (a :class:`~medbench.results.RunRecord`)."""
    config = run.config or {}
    framework = run.framework or config.get("framework") or "?"
    return variant_label(framework, config.get("runtime"))
