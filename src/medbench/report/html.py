"""Renders a :class:`~medbench.report.document.Document` as one self-contained HTML page.

Everything is inline (CSS in a ``<style>``, plots as base64 ``data:`` URIs, no script, no font or CDN), so the
page can be mailed, archived or opened offline and still show everything. Every text goes through
:func:`html.escape`: run names, failure reasons and paths come from the store and may hold anything.

A template engine would add a dependency for a page whose structure is a handful of loops; plain functions
keep it testable piece by piece.
"""

from __future__ import annotations

import base64
import re
import struct
from html import escape

from medbench.report.document import Block, Cell, Details, Document, Figure, Note, Row, Section, Table

CSS = """
:root { --fg:#1d232b; --muted:#67707c; --line:#dde2e8; --bg-alt:#f6f8fa; --good:#17803d; --bad:#c0262d;
        --warn-bg:#fff6dc; --warn:#8a5a00; --ref-bg:#f3f0fa; --accent:#2d6cdf; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff; line-height: 1.45;
       font: 14px/1.45 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1440px; margin: 0 auto; padding: 20px 28px 60px; }
@media (max-width: 640px) { main { padding: 12px 12px 40px; } h1 { font-size: 20px; } }
h1 { font-size: 24px; margin: 4px 0 12px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 15.5px; margin: 26px 0 8px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
dl.facts { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 14px; margin: 0 0 12px;
           padding: 10px 14px; background: var(--bg-alt); border: 1px solid var(--line); border-radius: 6px; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; overflow-wrap: anywhere; }
nav.toc { margin: 10px 0 4px; font-size: 13px; display: flex; flex-wrap: wrap; gap: 4px 14px; }
nav.toc a { white-space: nowrap; }
/* A wide table scrolls inside its own box; the page itself never scrolls sideways. */
.table-wrap { overflow-x: auto; margin: 8px 0 10px; max-width: 100%; }
table { border-collapse: collapse; font-size: 13px; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding: 4px 0 6px; color: var(--muted); caption-side: top; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
th { background: var(--bg-alt); font-weight: 600; white-space: nowrap; border-bottom: 2px solid var(--line); }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tbody tr:hover td { background: #f0f4fb; }
tr.ref td { background: var(--ref-bg); color: #3c3552; font-style: italic; }
tr.baseline td { background: #f4f4f4; color: #4a525c; }
td.good { color: var(--good); font-weight: 600; } td.bad { color: var(--bad); font-weight: 700; }
td.warn { background: var(--warn-bg) !important; color: var(--warn); }
td.muted { color: var(--muted); } td.best { font-weight: 700; }
td[title] { cursor: help; }
table.t-glance td, table.t-bench td { white-space: nowrap; }
table.t-glance th, table.t-verdict th, table.t-recall th { white-space: normal; }
table.t-glance th, table.t-glance td { padding: 5px 5px; }
table.t-glance th { min-width: 5em; } /* short figures under long headers: fewer header lines */
/* The subject stays in view while the rest of a wide table scrolls under it. */
table.t-glance td:first-child, table.t-glance th:first-child, table.t-verdict td:first-child,
table.t-verdict th:first-child { position: sticky; left: 0; z-index: 1; background: #fff; }
table.t-glance th:first-child, table.t-verdict th:first-child { background: var(--bg-alt); }
table.t-verdict tr.ref td:first-child { background: var(--ref-bg); }
table.t-verdict tr.baseline td:first-child { background: #f4f4f4; }
table.t-verdict td:first-child { min-width: 9em; max-width: 16em; }
/* Figures stay on one line (the table scrolls in its box); only the label column wraps. */
table.t-verdict td { white-space: nowrap; } table.t-verdict td:first-child { white-space: normal; }
table.t-bench td:last-child { white-space: normal; min-width: 16em; }
p.note { margin: 4px 0; padding: 3px 10px; border-left: 3px solid var(--line); color: #38414c;
         overflow-wrap: anywhere; }
p.note.warn { border-color: #e0a800; background: var(--warn-bg); color: #5c3d00; }
p.note.good { border-color: var(--good); color: var(--good); font-weight: 600; }
p.note.bad { border-color: var(--bad); color: var(--bad); font-weight: 600; }
p.note.muted { color: var(--muted); }
/* Two columns where they fit, one below ~1000 px: min(100%, ...) lets a column shrink below its minimum
   on a phone instead of overflowing the page. */
.figs { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 480px), 1fr)); gap: 14px;
        margin: 12px 0; }
figure.wide { grid-column: 1 / -1; }
figure { margin: 0; padding: 8px; border: 1px solid var(--line); border-radius: 6px; background: #fff;
         min-width: 0; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
/* Side-by-side panels (confusion matrices) would shrink to illegible on a phone: below 640 px they keep
   that width and scroll inside their own box instead. */
.fig-scroll { overflow-x: auto; }
figure.wide img { min-width: 640px; }
figcaption { font-size: 12px; color: var(--muted); margin-top: 4px; }
details { margin: 8px 0; } summary { cursor: pointer; color: var(--accent); font-size: 13px; }
h2, h3 { overflow-wrap: anywhere; }
section.comparison { border-top: 1px dashed var(--line); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, so the page reserves the space before decoding."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _attr(value: str) -> str:
    return escape(value, quote=True)


def render_cell(cell: Cell, tag: str = "td") -> str:
    classes = " ".join(c for c in ("num" if cell.numeric else "", cell.tone) if c)
    attrs = (f' class="{classes}"' if classes else "") + (f' title="{_attr(cell.hint)}"' if cell.hint else "")
    return f"<{tag}{attrs}>{escape(cell.text)}</{tag}>"


def render_row(row: Row) -> str:
    kind = f' class="{_attr(row.kind)}"' if row.kind else ""
    return f"<tr{kind}>" + "".join(render_cell(c) for c in row.cells) + "</tr>"


def render_table(table: Table) -> str:
    name = _attr(table.name)
    caption = f"<caption>{escape(table.caption)}</caption>" if table.caption else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "\n".join(render_row(row) for row in table.rows)
    return (
        f'<div class="table-wrap"><table class="t-{name}" data-table="{name}">{caption}'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table></div>"
    )


def render_figure(figure: Figure) -> str:
    width, height = png_size(figure.png)
    css = ' class="wide"' if figure.wide else ""
    # No loading="lazy": a figure folded in <details> or far down must still load for print and for checks.
    image = f'<img src="{data_uri(figure.png)}" alt="{_attr(figure.alt)}" width="{width}" height="{height}">'
    if figure.wide:
        image = f'<div class="fig-scroll">{image}</div>'
    caption = f"<figcaption>{escape(figure.caption)}</figcaption>"
    return f'<figure id="fig-{_attr(figure.name)}"{css}>{image}{caption}</figure>'


_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;)]")


def linkify(escaped: str) -> str:
    """Makes the URLs of already-escaped text clickable (sources, DOIs)."""
    return _URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped)


def render_note(note: Note) -> str:
    return f'<p class="note {_attr(note.tone)}">{linkify(escape(note.text))}</p>'


def render_blocks(blocks: tuple[Block, ...] | list[Block]) -> str:
    """Blocks in order; runs of consecutive figures share one responsive grid."""
    parts: list[str] = []
    figures: list[str] = []
    for block in blocks:
        if isinstance(block, Figure):
            figures.append(render_figure(block))
            continue
        if figures:
            parts.append('<div class="figs">' + "".join(figures) + "</div>")
            figures = []
        parts.append(render_block(block))
    if figures:
        parts.append('<div class="figs">' + "".join(figures) + "</div>")
    return "\n".join(parts)


def render_block(block: Block) -> str:
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Figure):
        return render_figure(block)
    if isinstance(block, Note):
        return render_note(block)
    if isinstance(block, Details):
        return (
            f"<details><summary>{escape(block.summary)}</summary>\n{render_blocks(block.blocks)}\n</details>"
        )
    return render_section(block)


def render_section(section: Section) -> str:
    level = min(max(section.level, 2), 4)
    css = ' class="comparison"' if level == 3 else ""
    heading = f'<h{level}><a href="#{_attr(section.anchor)}">{escape(section.title)}</a></h{level}>'
    return (
        f'<section id="{_attr(section.anchor)}"{css}>{heading}\n{render_blocks(section.blocks)}\n</section>'
    )


def render_toc(document: Document) -> str:
    links = "".join(f'<a href="#{_attr(s.anchor)}">{escape(s.title)}</a>' for s in document.sections)
    return f'<nav class="toc">{links}</nav>'


def render_html(document: Document) -> str:
    """The complete page."""
    facts = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in document.facts)
    body = "\n".join(render_section(s) for s in document.sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(document.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<header><h1>{escape(document.title)}</h1>\n"
        f'<dl class="facts">{facts}</dl>\n{render_toc(document)}</header>\n{body}\n'
        "<footer>Generated by medbench report; self-contained: every plot is embedded in this file.</footer>"
        "</main>\n</body>\n</html>\n"
    )
