"""``medbench models``: every registered model with its parameter count and FLOPs in each framework."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from medbench.commands.app import app, console
from medbench.errors import ConfigError
from medbench.frameworks import FRAMEWORKS
from medbench.frameworks.flops import CONVENTION
from medbench.models import get_model_spec, list_models


def _cell(entry: dict, key: str, scale: float, fmt: str) -> str:
    if "error" in entry:
        return "[red]error[/]"
    return format(entry[key] / scale, fmt)


@app.command("models")
def models_command(
    size: Annotated[int, typer.Option("--size", "-s", help="Image size the models are built for.")] = 28,
    framework: Annotated[
        list[str] | None, typer.Option("--framework", "-f", help="Framework(s) to measure (repeatable).")
    ] = None,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (output units).")] = 9,
    channels: Annotated[int, typer.Option("--channels", help="Input channels (1 grey, 3 RGB).")] = 3,
    model: Annotated[str, typer.Option("--model", "-m", help="Shell pattern of model names.")] = "*",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Parameters and FLOPs per image of each registered model, each framework in its own process."""
    from medbench.frameworks.describe import describe

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
    results = {}
    with console.status("building models in each framework..."):
        for name in frameworks:
            results[name] = describe(name, names, image_size=size, num_classes=classes, in_channels=channels)
    if as_json:
        console.print_json(json.dumps(results))
        return
    table = Table(
        box=box.SIMPLE_HEAD,
        title=f"Models at {size} px, {channels} channel(s), {classes} classes",
        caption=f"GFLOPs = {CONVENTION}. A red value differs between frameworks.",
    )
    table.add_column("model", no_wrap=True)
    table.add_column("family", no_wrap=True)
    for name in frameworks:
        table.add_column(f"params\n{name}", justify="right")
    for name in frameworks:
        table.add_column(f"GFLOPs\n{name}", justify="right")
    for model_name in names:
        entries = [
            results[fw]["models"].get(model_name, {"error": results[fw].get("error")}) for fw in frameworks
        ]
        row = [model_name, get_model_spec(model_name).family]
        for key, scale, fmt in (("params", 1, ",.0f"), ("flops", 1e9, ".3f")):
            values = {e.get(key) for e in entries if "error" not in e}
            style = "red" if len(values) > 1 else ""
            row += [
                f"[{style}]{_cell(e, key, scale, fmt)}[/]" if style else _cell(e, key, scale, fmt)
                for e in entries
            ]
        table.add_row(*row)
    console.print(table)
    for name in frameworks:
        errors = {m: e["error"] for m, e in results[name]["models"].items() if "error" in e}
        if results[name].get("error"):
            console.print(f"[red]{name}[/]: {escape(str(results[name]['error']))}")
        for model_name, message in errors.items():
            console.print(f"[dim]{name} {model_name}: {escape(str(message))}[/]", highlight=False)
