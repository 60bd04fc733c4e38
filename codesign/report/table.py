"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
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


def pareto_table(doc: dict[str, Any]) -> str:
    """The Pareto front of a ``pareto.json`` document, references below it.

    ``RAM KB`` is the tensor arena (TFLM's on a TFLM profile, else estimated,
    marked ``~``); a latency that is a host stand-in (TFLM) is said so under the table.
    """
    headers = ("trial", "val acc", "test acc", "latency us", "p90 us", "RAM KB", "flash KB",
               "res", "depths", "pruned", "precisions")
    rows = [_row(p["trial"], p) for p in doc["points"]]
    rows += [_row(r["name"], r) for r in doc["references"]]
    formats = ("", ".3f", ".3f", ".1f", ".1f", "", ".1f", "", "", ".0%", "")
    text = format_table(headers, rows, formats)
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


def _row(label: Any, p: dict[str, Any]) -> tuple[Any, ...]:
    c = p["candidate"]
    ratios = list(c["prune"].values())
    return (
        label,
        p["val_accuracy"],
        p["test_accuracy"],
        p["latency_ms"]["median"] * 1000,
        p["latency_ms"]["p90"] * 1000,
        ram_cell(p),
        p["size_bytes"] / 1024,
        c["resolution"],
        "-".join(str(d) for d in c["depths"]),
        sum(ratios) / max(1, len(ratios)),
        precision_mix(p["layers"]),
    )
