"""``medbench models``: every registered model with its parameter count and FLOPs in each framework (cached)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from medbench.commands.app import app, console, err_console
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain
from medbench.errors import ConfigError
from medbench.frameworks import FRAMEWORKS
from medbench.frameworks.describe import cache_path
from medbench.frameworks.flops import CONVENTION
from medbench.models import get_model_spec, list_models


@app.command("models")
def models_command(
    size: Annotated[int, typer.Option("--size", "-s", help="Image size the models are built for.")] = 28,
    framework: Annotated[
        list[str] | None,
        typer.Option("--framework", "-f", help="Framework(s) to measure (repeatable). Default: all three."),
    ] = None,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (output units).")] = 9,
    channels: Annotated[int, typer.Option("--channels", help="Input channels (1 grey, 3 RGB).")] = 3,
    model: Annotated[str, typer.Option("--model", "-m", help="Shell pattern of model names.")] = "*",
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Measure again in each framework instead of using the cache.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="The raw measurements as JSON: per framework, its versions and each model's params and flops.",
        ),
    ] = False,
    fmt: FormatOption = OutputFormat.table,
) -> None:
    """Parameters and FLOPs per image of each registered model, as each framework counts them.

    Each framework measures in its own process, once: the figures are cached under $MEDBENCH_HOME/cache,
    keyed by the framework's version and medbench's model code, so later listings take a second.

    \b
    Examples:
      medbench models
      medbench models --size 224 -m 'resnet*' --format csv
      medbench models -f torch --refresh       # measure again
    """
    from medbench.frameworks.describe import describe_cached

    if size < 28:
        raise ConfigError(
            f"--size {size} is too small to build a model for.",
            "Give 28 (the smallest MedMNIST size) or more.",
        )
    if classes < 1:
        raise ConfigError(
            f"--classes {classes}: a model needs at least one output.", "Give 1 or more, e.g. --classes 9."
        )
    if channels not in (1, 3):
        raise ConfigError(f"--channels {channels} is not a MedMNIST image.", "Give 1 (grey) or 3 (RGB).")
    frameworks = framework or list(FRAMEWORKS)
    for name in frameworks:
        if name not in FRAMEWORKS:
            raise ConfigError(f"Unknown framework {name!r}.", f"Choose from {', '.join(FRAMEWORKS)}.")
    names = list_models(model)
    if not names:
        raise ConfigError(f"No registered model matches {model!r}.", f"Known: {', '.join(list_models())}.")
    dims = {"image_size": size, "num_classes": classes, "in_channels": channels}
    results = {}
    with err_console.status("building models in each framework (once; then cached)..."):
        for name in frameworks:
            results[name] = describe_cached(name, names, refresh=refresh, **dims)
    if as_json:
        console.file.write(json.dumps(results, indent=1) + "\n")
        return
    table = OutputTable(
        f"Models at {size} px, {channels} channel(s), {classes} classes",
        [
            Column("model"),
            Column("family"),
            *(Column(f"params {fw}", "count", key=f"params_{fw}") for fw in frameworks),
            *(Column(f"GFLOPs {fw}", "float", 3, key=f"gflops_{fw}") for fw in frameworks),
        ],
        caption=f"GFLOPs = {CONVENTION}. A red value differs between frameworks. Each framework's own count, "
        f"cached in {cache_path()} (--refresh measures again).",
    )
    for model_name in names:
        entries = [results[fw]["models"].get(model_name, {}) for fw in frameworks]
        row: list = [model_name, get_model_spec(model_name).family]
        for key, scale in (("params", 1), ("flops", 1e9)):
            values = [e[key] / scale if key in e else None for e in entries]
            if len({v for v in values if v is not None}) > 1:  # frameworks disagree: show it
                first = len(row)
                table.highlight |= {(len(table.rows), first + i) for i in range(len(values))}
            row += values
        table.add_row(*row)
    emit(table, fmt)
    for name in frameworks:
        if results[name].get("error"):
            note(f"[red]{name}[/]: {plain(str(results[name]['error']))}", fmt)
        for model_name, entry in results[name]["models"].items():
            if "error" in entry:
                note(f"[dim]{name} {model_name}: {plain(str(entry['error']))}[/]", fmt)
