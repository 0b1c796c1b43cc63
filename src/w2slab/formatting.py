"""How numbers and table cells are written, in one place, so one kind of number reads the same in every table.

Every table of w2slab writes its numbers through these functions: an undefined number (None, NaN, an infinity)
is never printed as a value. Each function is one format; they differ on purpose:

- :func:`number` and :func:`signed`: Markdown tables and reports (``0.550``, ``+0.031``; ``n/a`` where undefined,
  or what ``missing`` says for a table that leaves such a cell empty), :func:`with_interval` a value with its 95%
  interval (``0.550 [0.410, 0.700]``);
- :func:`console`: the ``w2s run`` table and one-line summaries, where an undefined number is ``  nan`` (as wide as
  ``0.000``, so the columns stay aligned);
- :func:`p_value` (``0.012``, ``3.2e-05``; ``n/a``) and :func:`p_short` (``0.012``, ``3e-05``; empty), the two
  widths of p-values the tables print;
- :func:`markdown_cell`: any text placed in a Markdown table cell.
"""

from __future__ import annotations

import math

#: What a table prints for a number that is not defined (a PGR without a gap, a mean over no value).
UNDEFINED = "n/a"


def undefined(value: float | None) -> bool:
    """Whether ``value`` is no number to print: None (JSON null), NaN or an infinity."""
    return value is None or not math.isfinite(value)


def number(value: float | None, digits: int = 3, *, missing: str = UNDEFINED) -> str:
    """``value`` to ``digits`` decimals (``0.550``); ``missing`` where it is undefined."""
    return missing if undefined(value) else f"{value:.{digits}f}"


def signed(value: float | None, digits: int = 3, *, missing: str = UNDEFINED) -> str:
    """``value`` with its sign to ``digits`` decimals (``+0.031``, ``-0.004``): differences, where the direction is
    the finding; ``missing`` where it is undefined."""
    return missing if undefined(value) else f"{value:+.{digits}f}"


def with_interval(point: float | None, low: float | None, high: float | None) -> str:
    """``0.550 [0.410, 0.700]``; just ``n/a`` when the statistic itself is undefined."""
    return UNDEFINED if undefined(point) else f"{number(point)} [{number(low)}, {number(high)}]"


def console(value: float | None) -> str:
    """3 decimals, and ``  nan`` where undefined: the printed ``w2s run`` table and one-line summaries, whose
    columns stay aligned because ``  nan`` is as wide as ``0.000``."""
    return "  nan" if undefined(value) else f"{value:.3f}"


def p_value(value: float | None) -> str:
    """A p-value to 3 decimals, below 0.001 as ``3.2e-05`` (never ``0.000``); ``n/a`` where undefined."""
    return UNDEFINED if undefined(value) else _p(value, ".1e")


def p_short(value: float | None) -> str:
    """A p-value in the narrow columns of the benchmark tables: 3 decimals, below 0.001 as ``3e-05``; empty where
    undefined (a row that tests nothing)."""
    return "" if undefined(value) else _p(value, ".0e")


def _p(value: float, small: str) -> str:
    return f"{value:.3f}" if value >= 0.001 else f"{value:{small}}"


def markdown_cell(text: object) -> str:
    """Cell text that cannot break a Markdown table: a ``|`` (a config value such as ``keyword=a|b``) would start
    a new column, a newline a new row."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
