"""Colours, number formats and escaping shared by the page, the PNGs and the summary."""

from __future__ import annotations

import html
import math
import shlex
from typing import Any

PRECISION_COLOURS = {
    "float32": "#4c72b0",
    "float16": "#55a868",
    "int16x8": "#c44e52",
    "int8": "#dd8452",
    "int4": "#8172b3",
}
OTHER_COLOUR = "#7f7f7f"
TRIAL_GREY = "#b0b0b0"
FRONT_COLOUR = "#d62728"
REFERENCE_COLOUR = "#1f1f1f"
RUN_COLOURS = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def precision_colour(precision: str | None) -> str:
    """The colour of a precision in every figure."""
    return PRECISION_COLOURS.get(precision or "", OTHER_COLOUR)


def esc(value: Any) -> str:
    """HTML-escape any value's text (quotes included)."""
    return html.escape(str(value), quote=True)


def plot_text(value: Any) -> str:
    """Escape text for a plotly title, legend or hover label.

    plotly draws a few HTML tags in those and decodes only some named entities
    (``&lt;``, ``&gt;``, ``&amp;``, not ``&quot;``), so quotes stay as they are:
    without a ``<`` no tag can start.
    """
    return html.escape(str(value), quote=False)


def md(value: Any) -> str:
    """Escape text for a Markdown table cell (no HTML, no pipes, one line)."""
    text = html.escape(str(value), quote=False).replace("|", "\\|")
    for ch in ("`", "*", "_", "[", "]"):
        text = text.replace(ch, "\\" + ch)
    return " ".join(text.split())


def shell_command(*args: Any) -> str:
    """A command line with every argument quoted for a POSIX shell."""
    return " ".join(shlex.quote(str(a)) for a in args)


def num(value: Any, fmt: str = ".3f", missing: str = "n/a") -> str:
    """Format a number, or say it is missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return missing
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def pct(value: Any, missing: str = "n/a") -> str:
    """Format a fraction as a percentage."""
    return num(value * 100 if isinstance(value, int | float) else None, ".1f", missing) + (
        " %" if isinstance(value, int | float) else "")


def kb(size_bytes: Any) -> str:
    """Format a byte count in KB (1024 bytes)."""
    return num(size_bytes / 1024 if isinstance(size_bytes, int | float) else None, ".1f")


def lat(value_ms: Any, factor: float, unit: str) -> str:
    """Format a latency given in milliseconds in the report's unit."""
    if not isinstance(value_ms, int | float):
        return "n/a"
    shown = value_ms * factor
    return f"{shown:.{_digits(shown)}f} {unit}"


def _digits(v: float) -> int:
    v = abs(v)
    return 1 if v >= 100 else 2 if v >= 10 else 3 if v >= 1 else 4
