"""``medbench report``: the results store as one self-contained HTML page, a Markdown file and its plots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medbench.commands.app import STORE_HELP, app, console
from medbench.commands.compare import Correction, CorrectionOption


@app.command("report")
def report_command(
    store: Annotated[Path | None, typer.Option("--store", help=STORE_HELP)] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-x", help="Only this experiment's runs. Default: all.")
    ] = None,
    dataset: Annotated[
        list[str] | None,
        typer.Option("--dataset", "-d", help="Only these datasets (repeat for several). Default: all."),
    ] = None,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for report.html, report.md and PNGs.")
    ] = Path("report"),
    margin: Annotated[
        float, typer.Option("--margin", help="Equivalence margin of the framework verdicts, in points.")
    ] = 1.0,
    correction: CorrectionOption = Correction.holm,
) -> None:
    """Write report.html (one file, plots embedded), report.md and the plots as PNG files.

    Prints the paths it wrote, one per line, the page first.

    \b
    Examples:
      medbench report -x quick -o report/
      medbench report -d bloodmnist -o blood_report/
      medbench report --margin 0.5                    # a stricter equivalence margin
      medbench report --correction none               # verdicts on unadjusted p
    """
    from medbench.errors import ConfigError
    from medbench.preflight import check_report_folder, open_existing_store
    from medbench.report import NoRunsError, write_report

    check_report_folder(output, option="--output")
    results = open_existing_store(store, doing="No runs to report")
    if results is None:
        raise NoRunsError("No runs to report yet (no results store).", "Train or run something first.")
    if not margin > 0:
        raise ConfigError(
            f"--margin {margin:g} must be positive.", "Pass a margin in points, e.g. --margin 1."
        )
    files = write_report(
        results,
        output,
        experiment=experiment,
        datasets=dataset,
        margin_points=margin,
        correction=correction.value,
    )
    # One path per line, the page first: easy to open, and to pick up in a script.
    for path in (files.html, files.markdown, *files.images):
        console.print(str(path), highlight=False, soft_wrap=True, markup=False)
