"""What Ctrl-C leaves behind: commands note what they keep, and the CLI says it when it stops.

A command that has started something resumable (a run folder, a grid of trials) sets a note with
:func:`keep` as soon as there is something to keep; the CLI prints :func:`message` after an interrupt, so the
user learns what was kept and how to go on, instead of a bare exit code 130.
"""

from __future__ import annotations

_notes: list[str] = []


def keep(note: str) -> None:
    """Says what an interrupt from now on leaves behind and how to resume it (shown once, after Ctrl-C)."""
    if note not in _notes:
        _notes.append(note)


def clear() -> None:
    _notes.clear()


def message() -> str:
    """The line printed after Ctrl-C (Rich markup; the notes are escaped)."""
    from rich.markup import escape

    if not _notes:
        return "[yellow]interrupted[/] (Ctrl-C)."
    return "[yellow]interrupted[/] (Ctrl-C). " + " ".join(escape(n) for n in _notes)
