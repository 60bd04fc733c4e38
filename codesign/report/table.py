"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], formats: Sequence[str] | None = None
) -> str:
    """Align ``rows`` under ``headers`` (right-aligned numbers, left-aligned text).

    Args:
        headers: Column titles.
        rows: Cell values.
        formats: Optional format spec per column for float cells (``".3f"``).
    """
    fmts = list(formats) if formats else [""] * len(headers)
    cells = [[str(h) for h in headers]] + [
        [_cell(v, fmts[i]) for i, v in enumerate(r)] for r in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) if rows else False
        for i in range(len(headers))
    ]
    lines = []
    for n, r in enumerate(cells):
        parts = [
            c.rjust(widths[i]) if numeric[i] else c.ljust(widths[i]) for i, c in enumerate(r)
        ]
        lines.append("  ".join(parts).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _cell(v: Any, fmt: str) -> str:
    if isinstance(v, float):
        return format(v, fmt or ".3f")
    return str(v)


PRECISION_SHORT = {"float32": "f32", "float16": "f16", "int8": "i8", "int16x8": "i16x8",
                   "int4": "i4"}


def precision_mix(layers: Sequence[dict[str, Any]]) -> str:
    """Count of layers per precision, e.g. ``i8:20 f32:3``, most frequent first."""
    counts: dict[str, int] = {}
    for layer in layers:
        counts[layer["precision"]] = counts.get(layer["precision"], 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return " ".join(f"{PRECISION_SHORT.get(p, p)}:{n}" for p, n in ordered)


@dataclass(frozen=True)
class Column:
    """A column of a front table.

    Attributes:
        header: Its title.
        cell: A point's (or reference's) value in it.
        fmt: Format spec of float values (``".3f"``; empty: the table's default).
    """

    header: str
    cell: Callable[[dict[str, Any]], Any]
    fmt: str = ""


def _pruned(p: dict[str, Any]) -> float:
    ratios = list(p["candidate"]["prune"].values())
    return sum(ratios) / max(1, len(ratios))


# The columns every source's front table picks from, by header.
COLUMNS = {c.header: c for c in (
    Column("val acc", lambda p: p["val_accuracy"], ".3f"),
    Column("test acc", lambda p: p["test_accuracy"], ".3f"),
    Column("latency us", lambda p: p["latency_ms"]["median"] * 1000, ".1f"),
    Column("p90 us", lambda p: p["latency_ms"]["p90"] * 1000, ".1f"),
    Column("RAM KB", lambda p: ram_cell(p)),
    Column("flash KB", lambda p: p["size_bytes"] / 1024, ".1f"),
    Column("res", lambda p: p["candidate"]["resolution"]),
    Column("depths", lambda p: "-".join(str(d) for d in p["candidate"]["depths"])),
    Column("pruned", _pruned, ".0%"),
    Column("precisions", lambda p: precision_mix(p["layers"])),
)}


def front_table(doc: dict[str, Any], columns: Sequence[str | Column]) -> str:
    """The points of a ``pareto.json`` document, references below them, as a table.

    Args:
        doc: The document.
        columns: After ``trial`` (a point's number, a reference's name): the
            columns, by header (see :data:`COLUMNS`) or a source's own.
    """
    cols = [COLUMNS[c] if isinstance(c, str) else c for c in columns]
    labelled = [*((p["trial"], p) for p in doc["points"]),
                *((r["name"], r) for r in doc["references"])]
    rows = [(label, *(c.cell(p) for c in cols)) for label, p in labelled]
    return format_table(("trial", *(c.header for c in cols)), rows, ("", *(c.fmt for c in cols)))


def pareto_table(doc: dict[str, Any]) -> str:
    """The Pareto front of a built-in run's ``pareto.json`` document, references below it.

    ``RAM KB`` is the tensor arena (TFLM's on a TFLM profile, else estimated,
    marked ``~``); a latency that is a host stand-in (TFLM) is said so under the table.
    """
    text = front_table(doc, ("val acc", "test acc", "latency us", "p90 us", "RAM KB",
                             "flash KB", "res", "depths", "pruned", "precisions"))
    records = [*doc["points"], *doc["references"]]
    notes = {r["latency_ms"].get("stand_in") for r in records} - {None}
    if any((r.get("ram") or {}).get("source") == "estimate" for r in records):
        notes.add("~ RAM estimated from the file (the tensor arena TFLM would plan)")
    return "\n".join([text, *sorted(notes)])


def ram_cell(p: dict[str, Any]) -> str:
    """A point's tensor arena in KB (``~``: estimated from the file; ``-``: not recorded)."""
    ram = p.get("ram_bytes")
    if ram is None:
        return "-"
    estimated = (p.get("ram") or {}).get("source") == "estimate"
    return f"{'~' if estimated else ''}{ram / 1024:.1f}"
