"""Parameter counts and FLOPs of registered models, measured by each framework in its own process.

:func:`describe` (used by ``medbench models``) starts ``python -m medbench.frameworks.describe`` once per
framework, because frameworks must not share a process (import clashes, thread settings); the child builds
every requested model through the framework's :class:`~medbench.frameworks.base.Framework`, and prints one
JSON object on its last stdout line. A model that fails to build is reported with its error, not fatal.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any


def measure(framework: str, names: list[str], *, image_size: int, num_classes: int, in_channels: int) -> dict:
    """In *this* process: ``{"versions": ..., "models": {name: {"params", "flops"} or {"error"}}}``."""
    from medbench.frameworks import get_framework
    from medbench.frameworks.base import RuntimeSettings

    fw = get_framework(framework)
    fw.configure(RuntimeSettings())
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
    """:func:`measure` in a fresh ``python -m medbench.frameworks.describe`` process."""
    cmd = [
        sys.executable,
        "-m",
        "medbench.frameworks.describe",
        framework,
        "--models",
        ",".join(names),
        "--size",
        str(image_size),
        "--classes",
        str(num_classes),
        "--channels",
        str(in_channels),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"framework": framework, "error": tail, "models": {}}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("framework")
    parser.add_argument("--models", required=True, help="comma-separated registered names")
    parser.add_argument("--size", type=int, default=28)
    parser.add_argument("--classes", type=int, default=9)
    parser.add_argument("--channels", type=int, default=3)
    args = parser.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    result = measure(
        args.framework, names, image_size=args.size, num_classes=args.classes, in_channels=args.channels
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
