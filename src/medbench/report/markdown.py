"""Renders a :class:`~medbench.report.document.Document` as GitHub-flavoured Markdown.

The tables are the HTML page's tables; plots are referenced as PNG files written next to the ``.md`` file
(``<figure name>.png``), since Markdown cannot embed images portably.
"""

from __future__ import annotations

import re

from medbench.report.document import Block, Cell, Details, Document, Figure, Note, Section, Table


def escape_text(value: str) -> str:
    """Text from the store, safe in Markdown: ``<shape 128x64>`` in a failure reason is not an HTML tag."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell_text(cell: Cell) -> str:
    # A pipe would end the cell, a newline the row.
    text = escape_text(cell.text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if cell.tone == "best" and text else text


def render_table(table: Table) -> str:
    lines = [f"*{table.caption}*", ""] if table.caption else []
    # A column of figures is right-aligned even where a row has a dash (published rows have no CI).
    numeric = [any(row.cells[i].numeric for row in table.rows) for i in range(len(table.headers))]
    lines.append("| " + " | ".join(h.replace("|", "\\|") for h in table.headers) + " |")
    lines.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_cell_text(c) for c in row.cells) + " |")
    return "\n".join(lines)


def figure_file(figure: Figure) -> str:
    return f"{figure.name}.png"


def render_figure(figure: Figure) -> str:
    return f"![{escape_text(figure.alt)}]({figure_file(figure)})\n\n*{escape_text(figure.caption)}*"


def render_note(note: Note) -> str:
    if note.tone == "warn":
        return f"> **⚠** {escape_text(note.text)}"
    if note.tone == "bad":  # a failed criterion, a run no better than the baseline: its text says so
        return f"> **{escape_text(note.text)}**"
    return escape_text(note.text)


def render_block(block: Block, level: int) -> str:
    if isinstance(block, Table):
        return render_table(block)
    if isinstance(block, Figure):
        return render_figure(block)
    if isinstance(block, Note):
        return render_note(block)
    if isinstance(block, Details):
        inner = "\n\n".join(render_block(b, level) for b in block.blocks)
        return f"**{block.summary}**\n\n{inner}"
    return render_section(block)


def render_section(section: Section) -> str:
    heading = "#" * min(max(section.level, 2), 6) + " " + section.title
    parts = [heading, *(render_block(b, section.level) for b in section.blocks)]
    return "\n\n".join(parts)


def heading_anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def render_markdown(document: Document) -> str:
    """The complete Markdown text."""
    facts = "\n".join(f"- **{k}**: {v}" for k, v in document.facts)
    toc = " · ".join(f"[{s.title}](#{heading_anchor(s.title)})" for s in document.sections)
    body = "\n\n".join(render_section(s) for s in document.sections)
    return f"# {document.title}\n\n{facts}\n\n{toc}\n\n{body}\n"
