"""``medbench report``: the results store as one self-contained HTML page, a Markdown file and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.app import app, console


@app.command("report")
def report_command(
    store: Annotated[
        Path | None, typer.Option("--store", help="Results database (default ~/.medbench).")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-x", help="Only this experiment's runs.")
    ] = None,
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets (repeat for several).")
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for report.html, report.md and PNGs.")
    ] = Path("report"),
    margin: Annotated[
        float, typer.Option("--margin", help="Equivalence margin of the framework verdicts, in points.")
    ] = 1.0,
) -> None:
    """Write report.html (one file, plots embedded), report.md and the plots as PNG files."""
    from medbench.report import write_report

    if not margin > 0:
        from medbench.errors import ConfigError

        raise ConfigError(
            f"--margin {margin:g} must be positive.", "Pass a margin in points, e.g. --margin 1."
        )
    files = write_report(store, output, experiment=experiment, datasets=dataset, margin_points=margin)
    # One path per line, the page first: easy to open, and to pick up in a script.
    for path in (files.html, files.markdown, *files.images):
        console.print(str(path), highlight=False, soft_wrap=True)
