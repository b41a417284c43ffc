"""The report as data: sections of tables, figures and notes, rendered by ``html`` and ``markdown`` alike.

Building the content once and rendering it twice keeps the HTML page and the Markdown file the same report:
a number cannot appear in one and be missing from the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Union

# Tones are visual only (a CSS class in HTML); the text of a cell must carry its meaning by itself, because
# Markdown shows no colours.
TONES: tuple[str, ...] = ("", "good", "bad", "warn", "muted", "best")


@dataclass(frozen=True)
class Cell:
    """A table cell: ``hint`` becomes a tooltip in HTML; ``numeric`` right-aligns it."""

    text: str
    tone: str = ""
    hint: str = ""
    numeric: bool = False


@dataclass(frozen=True)
class Row:
    """A table row; ``kind`` is ``"ref"`` for a published figure, so it reads apart from measured rows."""

    cells: tuple[Cell, ...]
    kind: str = ""


@dataclass(frozen=True)
class Table:
    """``name`` says what the table is (``verdict``, ``glance``, ``machines`` ...), for styling and tests."""

    headers: tuple[str, ...]
    rows: tuple[Row, ...]
    name: str = ""
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """A PNG plot; ``name`` is its file stem (unique within a report), ``caption`` what to read in it;
    ``wide`` takes the full width (side-by-side panels) instead of a grid column."""

    name: str
    caption: str
    png: bytes
    alt: str
    wide: bool = False


@dataclass(frozen=True)
class Note:
    """A paragraph; ``tone`` ``warn`` for what must not be missed (custom data, unverified figures)."""

    text: str
    tone: str = "info"


@dataclass(frozen=True)
class Details:
    """Supporting material folded away in HTML (per-seed tables); printed in full in Markdown."""

    summary: str
    blocks: tuple[Block, ...]


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2


Block = Union[Table, Figure, Note, Details, Section]  # noqa: UP007  (a runtime alias: `|` needs 3.10+ types)


@dataclass
class Document:
    title: str
    facts: list[tuple[str, str]]  # the header's key figures, label and value
    sections: list[Section]

    def figures(self) -> Iterator[Figure]:
        """Every figure, in reading order."""
        yield from _figures(self.sections)

    def tables(self) -> Iterator[Table]:
        yield from _tables(self.sections)


def _children(block: Block) -> tuple[Block, ...] | list[Block]:
    if isinstance(block, (Section, Details)):
        return block.blocks
    return ()


def _walk(blocks: list[Section] | tuple[Block, ...] | list[Block]) -> Iterator[Block]:
    for block in blocks:
        yield block
        yield from _walk(_children(block))


def _figures(blocks: list[Section]) -> Iterator[Figure]:
    return (block for block in _walk(blocks) if isinstance(block, Figure))


def _tables(blocks: list[Section]) -> Iterator[Table]:
    return (block for block in _walk(blocks) if isinstance(block, Table))
