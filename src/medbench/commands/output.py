"""Every table the CLI prints, in one plain shape, rendered as a Rich table, CSV, JSON or Markdown.

A command builds :class:`OutputTable` objects (a title, columns, rows of plain values) and hands them to
:func:`emit` with the user's ``--format``. Nothing here knows about any command, so a new one (``compare``)
plugs in by building the same shape.

Units: fractions that people read as percentages (ACC, AUC) are percent in every format, and the column's
machine key says so (``test_acc_pct``), so a table, its CSV and its JSON carry the same numbers. A value may
be a ``(mean, std)`` pair: people see ``89.40 ± 0.52``; CSV and JSON get two fields, ``key`` and ``key_std``.

Machine formats: CSV is one table (several tables: each preceded by a ``# title`` line and separated by a
blank line); JSON is a list of row objects (several tables: an object of such lists, by table key). Notes
that are not tables go to stderr in the machine formats, so stdout stays parseable.
"""

from __future__ import annotations

import csv
import enum
import io
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from medbench.stats.pvalues import p_text


class OutputFormat(str, enum.Enum):
    table = "table"
    csv = "csv"
    json = "json"
    markdown = "markdown"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="table (for people), csv, json or markdown (for scripts and documents).",
        case_sensitive=False,
    ),
]

NUMERIC_KINDS = ("int", "float", "percent", "count", "p")


@dataclass(frozen=True)
class Column:
    """One column: ``name`` for people, ``key`` for scripts (derived from the name when empty).

    ``kind``: text; int; count (an integer with thousands separators for people); float (``digits``
    decimals for people, full precision for scripts); percent (the value is a fraction, shown and exported as
    percent with ``digits`` decimals); p (a p-value: as float, but one too small for ``digits`` decimals
    reads ``<0.0001`` for people rather than ``0.0000``, which would claim a p of zero). ``styles`` colours a
    text value in the terminal table, ``symbols`` shows a text value as a symbol for people (``"verified"``
    as ``✓``) while scripts get the word. ``for_people=False``: only in CSV and JSON (a value the same on
    every row, which the title already tells people).
    """

    name: str
    kind: str = "text"
    digits: int = 2
    key: str = ""
    styles: Mapping[str, str] = field(default_factory=dict)
    symbols: Mapping[str, str] = field(default_factory=dict)
    align: str = ""  # "right" for text that holds numbers (a "2.1 (2.0-2.3)" spread); default by kind
    for_people: bool = True

    @property
    def right(self) -> bool:
        return self.align == "right" if self.align else self.kind in NUMERIC_KINDS

    @property
    def field_key(self) -> str:
        if self.key:
            return self.key
        base = re.sub(r"[^0-9a-z]+", "_", self.name.lower().replace("%", "pct")).strip("_")
        return f"{base}_pct" if self.kind == "percent" else base

    @property
    def header(self) -> str:
        return f"{self.name} %" if self.kind == "percent" else self.name


@dataclass
class OutputTable:
    """A table as data. ``rows`` hold plain values (str, int, float, None or a ``(mean, std)`` pair)."""

    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    caption: str = ""
    key: str = ""  # the table's name in a multi-table JSON object
    highlight: set[tuple[int, int]] = field(default_factory=set)  # (row, column) cells shown in red

    def add_row(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{self.title}: {len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def records(self) -> list[dict[str, Any]]:
        """The rows as objects, keyed by the columns' machine keys (what JSON prints)."""
        paired = [any(isinstance(row[i], tuple) for row in self.rows) for i in range(len(self.columns))]
        return [dict(_machine_fields(self.columns, paired, row)) for row in self.rows]


def _number(column: Column, value: Any) -> Any:
    """The value in the column's unit (percent for percent columns), for scripts."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if column.kind == "percent":
        return round(value * 100, 10)
    return value


def _machine_fields(columns: Sequence[Column], paired: Sequence[bool], row: Sequence[Any]):
    """(key, value) pairs of one row; a column holding (mean, std) pairs gives ``key`` and ``key_std``."""
    for column, has_pairs, value in zip(columns, paired, row, strict=True):
        mean, std = value if isinstance(value, tuple) else (value, None)
        yield column.field_key, _number(column, mean)
        if has_pairs:
            yield f"{column.field_key}_std", _number(column, std)


def _machine_header(table: OutputTable) -> list[str]:
    header = []
    for i, column in enumerate(table.columns):
        header.append(column.field_key)
        if any(isinstance(row[i], tuple) for row in table.rows):
            header.append(f"{column.field_key}_std")
    return header


def format_value(column: Column, value: Any) -> str:
    """The text people read in a cell."""
    if value is None:
        return "-"
    if isinstance(value, tuple):
        mean, std = value
        if mean is None:
            return "-"
        return format_value(column, mean) + ("" if not std else f" ± {format_value(column, std)}")
    if isinstance(value, str):
        return column.symbols.get(value, value)
    if isinstance(value, float) and not math.isfinite(value):
        return "-"
    if column.kind == "percent":
        return f"{value * 100:.{column.digits}f}"
    if column.kind == "count":
        return f"{value:,.0f}"
    if column.kind == "float":
        return f"{value:,.{column.digits}f}"
    if column.kind == "p":
        return p_text(value, column.digits)
    return str(value)


def rich_table(table: OutputTable) -> Table:
    """The terminal rendering (without the caption, see :func:`emit`). Off a terminal the console is wide
    enough for every cell whole."""
    out = Table(
        title=escape(table.title) if table.title else None,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        pad_edge=False,
    )
    shown = _for_people(table)
    for c in shown:
        column = table.columns[c]
        out.add_column(column.header, justify="right" if column.right else "left")
    for r, row in enumerate(table.rows):
        cells = []
        for c in shown:
            column, value = table.columns[c], row[c]
            text = Text(format_value(column, value))
            style = column.styles.get(value) if isinstance(value, str) else None
            if (r, c) in table.highlight:
                style = "red"
            if style:
                text.stylize(style)
            cells.append(text)
        out.add_row(*cells)
    return out


def _for_people(table: OutputTable) -> list[int]:
    """The indices of the columns a table for people shows."""
    return [i for i, column in enumerate(table.columns) if column.for_people]


def to_csv(tables: Sequence[OutputTable]) -> str:
    buffer = io.StringIO()
    for i, table in enumerate(tables):
        if len(tables) > 1:
            buffer.write(("\n" if i else "") + f"# {table.title}\n")
        writer = csv.writer(buffer, lineterminator="\n")
        header = _machine_header(table)
        writer.writerow(header)
        for record in table.records():
            writer.writerow(["" if record.get(k) is None else record.get(k) for k in header])
    return buffer.getvalue()


def to_json(tables: Sequence[OutputTable]) -> str:
    if len(tables) == 1:
        return json.dumps(tables[0].records(), indent=1)
    return json.dumps({t.key or t.title: t.records() for t in tables}, indent=1)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(tables: Sequence[OutputTable]) -> str:
    parts = []
    for table in tables:
        lines = [f"**{_md_cell(table.title)}**", ""] if table.title else []
        columns = [table.columns[i] for i in _for_people(table)]
        lines.append("| " + " | ".join(_md_cell(c.header) for c in columns) + " |")
        lines.append("|" + "|".join("---:" if c.right else "---" for c in columns) + "|")
        for row in table.rows:
            cells = (_md_cell(format_value(table.columns[i], row[i])) for i in _for_people(table))
            lines.append("| " + " | ".join(cells) + " |")
        if table.caption:
            lines += ["", f"*{_md_cell(table.caption)}*"]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def text_table(title: str, rows: Sequence[Mapping[str, Any]], *, right: Sequence[str] = (), key: str = ""):
    """An :class:`OutputTable` of rows that are already formatted text (dicts of column -> cell)."""
    names = list(rows[0]) if rows else []
    columns = [Column(n, align="right" if n in right else "left") for n in names]
    return OutputTable(title, columns, [[row[n] for n in names] for row in rows], key=key)


def emit(
    tables: OutputTable | Sequence[OutputTable],
    fmt: OutputFormat | str = OutputFormat.table,
    *,
    out: Console | None = None,
) -> None:
    """Prints ``tables`` on stdout (or ``out``) in ``fmt``; terminal tables are followed by a blank line."""
    from medbench.commands.app import console

    out = out or console
    tables = [tables] if isinstance(tables, OutputTable) else list(tables)
    fmt = OutputFormat(fmt)
    if fmt is OutputFormat.table:
        for table in tables:
            out.print(rich_table(table))
            if table.caption:  # after the table, not inside it: Rich would wrap it to the table's width
                out.print(escape(table.caption), highlight=False, soft_wrap=True)
            out.print()
        return
    text = {OutputFormat.csv: to_csv, OutputFormat.json: to_json, OutputFormat.markdown: to_markdown}[fmt](
        tables
    )
    # Plain write, not Rich: no markup, no wrapping, exactly the bytes a parser expects.
    out.file.write(text if text.endswith("\n") else text + "\n")
    out.file.flush()


def note(message: str, fmt: OutputFormat | str = OutputFormat.table, *, markup: bool = True) -> None:
    """A line that is not a table: on stdout beside a terminal table, on stderr beside machine output.

    ``markup=False`` for text that is not ours (a worker's line, a path): printed as it is, brackets too.
    """
    from medbench.commands.app import console, err_console

    target = console if OutputFormat(fmt) is OutputFormat.table else err_console
    target.print(message, highlight=False, soft_wrap=True, markup=markup)


def plain(text: str) -> str:
    """``text`` safe to print through Rich (user paths may hold square brackets)."""
    return escape(text)
