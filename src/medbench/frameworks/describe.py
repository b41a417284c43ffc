"""Parameter counts and FLOPs of registered models, measured by each framework in its own process.

:func:`describe` (used by ``medbench models``) runs :func:`measure` once per framework in a worker process
of its own (a ``describe`` job, :mod:`medbench.orchestration.process`), because frameworks must not share a
process (import clashes, thread settings); the child builds every requested model through the framework's
:class:`~medbench.frameworks.base.Backend`. A model that fails to build is reported with its error, not fatal.

:func:`describe_cached` keeps what was measured under ``$MEDBENCH_HOME/cache/``, keyed by everything the
figures depend on: the model, the input, the framework's installed package versions and a digest of
medbench's own model code. A listing after the first therefore takes no framework process at all, and any
change of code or version measures again (the numbers stay each framework's own count, never a guess).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

CACHE_VERSION = 1
# The packages (import names) a framework's figures depend on; their versions come from the installed
# distributions' metadata, so checking the cache imports nothing.
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "jax": ("jax", "jaxlib", "flax"),
    "keras": ("keras", "tensorflow"),
}


def measure(framework: str, names: list[str], *, image_size: int, num_classes: int, in_channels: int) -> dict:
    """In *this* process: ``{"versions": ..., "models": {name: {"params", "flops"} or {"error"}}}``."""
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework

    fw = get_framework(framework)
    fw.configure(RuntimeConfig())
    models: dict[str, Any] = {}
    for name in names:
        try:
            model = fw.build_model(
                name, num_classes=num_classes, in_channels=in_channels, image_size=image_size
            )
            models[name] = {
                "params": fw.count_params(model),
                "flops": fw.flops_per_image(model, image_size=image_size, in_channels=in_channels),
            }
        except Exception as err:  # reported per model (a family not written yet, a bug): the table goes on
            models[name] = {"error": f"{type(err).__name__}: {err}"}
        finally:
            model = None  # let a large model go before the next is built
    return {"framework": framework, "versions": fw.versions(), "models": models}


def describe(
    framework: str,
    names: list[str],
    *,
    image_size: int,
    num_classes: int,
    in_channels: int,
    timeout: float = 1800,
) -> dict:
    """:func:`measure` in a fresh worker process; a framework that cannot measure at all (not installed,
    crashed, timed out) is ``{"framework": ..., "error": why, "models": {}}``."""
    from medbench.errors import WorkerError
    from medbench.orchestration.process import call_worker

    args = {
        "framework": framework,
        "names": list(names),
        "image_size": image_size,
        "num_classes": num_classes,
        "in_channels": in_channels,
    }
    try:
        return call_worker({"kind": "describe", "args": args}, timeout_s=timeout)
    except WorkerError as err:
        return {"framework": framework, "error": str(err), "models": {}}


def cache_path() -> Path:
    from medbench.paths import medbench_home

    return medbench_home() / "cache" / f"models-v{CACHE_VERSION}.json"


@cache
def code_digest() -> str:
    """sha256 over medbench's model-building code (every framework's sources, the registry, the families)."""
    root = Path(__file__).resolve().parent
    files = sorted([*root.rglob("*.py"), root.parent / "models.py"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root.parent)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _versions(framework: str) -> str:
    names = DISTRIBUTIONS.get(framework) or tuple(
        d for part in framework.split("-") for d in DISTRIBUTIONS.get(part, (part,))
    )
    found = []
    for name in names:
        version = "missing"
        # an import name may come from a differently named distribution (tensorflow from tensorflow-cpu)
        for dist in _candidates(name):
            try:
                version = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
        found.append(f"{name}={version}")
    return ",".join(found)


def _candidates(name: str):
    yield from (name, f"{name}-cpu")  # the common cases first: reading every distribution's files is slow
    yield from metadata.packages_distributions().get(name, [])


def cache_key(framework: str, model: str, *, image_size: int, num_classes: int, in_channels: int) -> str:
    return "|".join(
        (
            framework,
            _versions(framework),
            code_digest(),
            model,
            f"{image_size}px",
            f"{num_classes}c",
            f"{in_channels}ch",
        )
    )


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # absent or damaged: measure again
    return data if isinstance(data, dict) else {}


def _write_cache(path: Path, data: dict[str, Any]) -> None:
    """Written beside and renamed over, so a listing running at the same time never reads half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(data, file, indent=0, sort_keys=True)
        os.replace(temp, path)
    except OSError:
        pass  # a read-only home only costs speed next time


def describe_cached(
    framework: str,
    names: list[str],
    *,
    image_size: int,
    num_classes: int,
    in_channels: int,
    refresh: bool = False,
) -> dict:
    """:func:`describe`, answered from the cache where it can be; ``cached`` lists the models that were.

    Only successful measurements are cached: a model that failed to build is tried again next time.
    """
    path = cache_path()
    stored = {} if refresh else _read_cache(path)
    dims = {"image_size": image_size, "num_classes": num_classes, "in_channels": in_channels}
    keys = {name: cache_key(framework, name, **dims) for name in names}
    hits = {name: stored[key] for name, key in keys.items() if key in stored}
    missing = [name for name in names if name not in hits]
    result: dict[str, Any] = {
        "framework": framework,
        "versions": next((h.get("versions") for h in hits.values() if h.get("versions")), None),
        "models": {name: {k: v for k, v in h.items() if k != "versions"} for name, h in hits.items()},
        "cached": sorted(hits),
    }
    if missing:
        fresh = describe(framework, missing, **dims)
        if fresh.get("error"):
            result["error"] = fresh["error"]
        result["versions"] = fresh.get("versions") or result["versions"]
        result["models"].update(fresh.get("models", {}))
        new = {
            keys[n]: {**e, "versions": fresh.get("versions")}
            for n, e in fresh.get("models", {}).items()
            if "error" not in e and n in keys
        }
        if new:
            _write_cache(path, {**_read_cache(path), **new})
    result["models"] = {name: result["models"][name] for name in names if name in result["models"]}
    return result
