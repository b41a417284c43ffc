"""What ``--config`` and ``--set`` give a command: a run config read from TOML or JSON, ``KEY=VALUE``
overrides, and both layered with the command's own flags (file < flags < ``--set``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import tomllib

from medbench.config import set_dotted
from medbench.errors import ConfigError


def load_config_file(path: Path) -> dict[str, Any]:
    """The run config in a TOML (``.toml``) or JSON file, as a dict; refused in one line if it is not one."""
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist.", "Check the path.")
    if path.is_dir():
        raise ConfigError(f"Config file {path} is a folder.", "Pass a TOML or JSON file inside it.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {path} is not a text file.", "Pass a TOML or JSON file.") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"Config file {path} cannot be parsed: {err}.", "Fix its syntax (TOML or JSON)."
        ) from None


def parse_override(text: str) -> tuple[str, Any]:
    """``--set KEY=VALUE`` as ``(key, value)``: the value read as JSON, else kept as the bare string."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} is not KEY=VALUE.", "Write e.g. --set recipe.epochs=5.")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as adamw
    except RecursionError:  # brackets nested thousands deep
        raise ConfigError(
            f"The value of --set {key.strip()[:60]} is nested too deeply.", "Give a plain value or list."
        ) from None
    return key.strip(), value


def build_config(base: dict[str, Any], flags: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Config file < command-line flags < ``--set`` overrides; a flag left at None is not set."""
    config = base
    for dotted, value in flags.items():
        if value is not None:
            config = set_dotted(config, dotted, value)
    for text in overrides:
        config = set_dotted(config, *parse_override(text))
    return config
