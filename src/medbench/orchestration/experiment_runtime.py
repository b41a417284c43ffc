"""Writes one framework's ``[per_framework.NAME.runtime]`` into an experiment file (``medbench tune --write``).

TOML has no writer in the standard library, and an experiment file is edited by people (comments, order),
so the file is edited as text: the framework's ``runtime`` table and its ``runtime.settings`` table are
taken out and written again at the end, with the keys tune does not decide (``threads``, ``precision`` ...)
kept as they were. The result is read back as an experiment; if it does not load (an inline table or dotted
keys for the same section elsewhere in the file), the file is left as it was and the error says so.
A file that does not exist yet becomes a one-trial experiment of the tuned (framework, model, size).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomllib

from medbench.errors import ConfigError

# what tune decides: the compile choice, the performance fields and every catalog setting
TUNED_FIELDS: tuple[str, ...] = ("compile", "channels_last", "settings")
NOTE_PREFIX = "# medbench tune:"  # the comment above the tables, replaced with them


def toml_value(value: Any) -> str:
    """A plain value as TOML (strings in JSON's escapes, which are TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise ConfigError(f"Cannot write {value!r} into an experiment file.", "Write it by hand.")


def _header(framework: str, sub: str = "") -> re.Pattern[str]:
    return re.compile(rf"^\s*\[\s*per_framework\.\"?{re.escape(framework)}\"?\.runtime{sub}\s*\]\s*(#.*)?$")


def _without_tables(text: str, framework: str) -> str:
    """``text`` without the framework's ``runtime`` and ``runtime.settings`` tables (header to next header)."""
    patterns = (_header(framework), _header(framework, r"\.settings"))
    out, skipping = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("["):
            skipping = any(p.match(line) for p in patterns)
            while skipping and out and out[-1].startswith(NOTE_PREFIX):  # the note of an earlier write
                out.pop()
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip() + "\n"


def runtime_tables(framework: str, runtime: Mapping[str, Any], *, note: str = "") -> str:
    """The TOML of ``[per_framework.NAME.runtime]`` (and ``.settings`` when there are any)."""
    lines = [f"{NOTE_PREFIX} {note}"] if note else []
    lines.append(f"[per_framework.{framework}.runtime]")
    lines += [f"{k} = {toml_value(v)}" for k, v in runtime.items() if k != "settings"]
    if runtime.get("settings"):
        lines.append(f"[per_framework.{framework}.runtime.settings]")
        lines += [f"{k} = {toml_value(v)}" for k, v in runtime["settings"].items()]
    return "\n".join(lines) + "\n"


def new_experiment(name: str, *, framework: str, model: str, size: int, dataset: str, batch_size: int) -> str:
    """A one-trial experiment of the tuned cell, for ``--write`` to a file that does not exist yet."""
    lines = [
        f"# Written by `medbench tune`: {framework} {model} at {size} px, batch {batch_size}.",
        f"name = {toml_value(name)}",
        "",
        "[grid]",
        f"datasets = [{toml_value(dataset)}]",
        f"sizes = [{size}]",
        f"frameworks = [{toml_value(framework)}]",
        f"models = [{toml_value(model)}]",
    ]
    if batch_size != 128:
        lines += ["", "[base.recipe]", f"batch_size = {batch_size}"]
    return "\n".join(lines) + "\n"


def write_framework_runtime(
    path: Path, framework: str, runtime: Mapping[str, Any], *, note: str = "", create: str | None = None
) -> Path:
    """Sets ``framework``'s tuned runtime fields in the experiment at ``path``; returns ``path``.

    ``create``: the text of a new experiment, used when ``path`` does not exist.

    Raises:
        ConfigError: the file cannot be read as TOML, or does not load as an experiment once written
            (it is then left unchanged).
    """
    from medbench.orchestration.experiments import load_experiment

    path = Path(path)
    if not path.exists() and create is None:
        raise ConfigError(f"No experiment file {path}.", "Give an existing file, or a new path to create.")
    before = path.read_text(encoding="utf-8") if path.exists() else None
    text = before if before is not None else create
    try:
        old = tomllib.loads(text).get("per_framework", {}).get(framework, {}).get("runtime", {})
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path} cannot be parsed: {err}.", "Fix its TOML syntax first.") from None
    kept = {k: v for k, v in old.items() if k not in TUNED_FIELDS}
    tables = runtime_tables(framework, {**kept, **runtime}, note=note)
    path.write_text(_without_tables(text, framework) + "\n" + tables, encoding="utf-8")
    try:
        load_experiment(path)
    except ConfigError as err:
        if before is None:
            path.unlink()
        else:
            path.write_text(before, encoding="utf-8")
        raise ConfigError(
            f"Writing [per_framework.{framework}.runtime] into {path} would break it ({err.problem}); "
            "the file is unchanged.",
            "Move that framework's runtime fields into [per_framework."
            f"{framework}.runtime] tables (not inline tables or dotted keys), or add them by hand.",
        ) from None
    return path
