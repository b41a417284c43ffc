"""p-values as people read them: rounded in the text only, never below what the digits can show.

Light on purpose: the CLI's output module and the report import :func:`p_text`.
"""

from __future__ import annotations

P_DIGITS = 4  # decimals people read; a smaller p reads "<0.0001"


def p_text(p: float, digits: int = P_DIGITS) -> str:
    """A p-value for people: ``digits`` decimals, and below what they show ``<0.0001`` (for 4), never
    ``0.0000``, which would claim a p of zero. Only the text is rounded: rows and CSV/JSON keep the value."""
    smallest = 10.0**-digits
    return f"<{smallest:.{digits}f}" if p < smallest else f"{p:.{digits}f}"
