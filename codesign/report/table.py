"""Plain-text tables for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Align ``rows`` under ``headers`` (right-aligned numbers, left-aligned text)."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in r] for r in rows]
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


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 0.1 else f"{v:.3f}"
    return str(v)


def pareto_table(doc: dict[str, Any]) -> str:
    """The Pareto front of a ``pareto.json`` document, references below it."""
    headers = ("trial", "val acc", "test acc", "latency ms", "p90 ms", "size KB", "res", "width",
               "depths", "precision")
    rows = []
    for p in doc["points"]:
        c = p["candidate"]
        rows.append(
            (
                p["trial"],
                p["val_accuracy"],
                p["test_accuracy"],
                p["latency_ms"]["median"],
                p["latency_ms"]["p90"],
                round(p["size_bytes"] / 1024, 1),
                c["resolution"],
                c["width"],
                "-".join(str(d) for d in c["depths"]),
                c["precision"],
            )
        )
    for r in doc["references"]:
        c = r["candidate"]
        rows.append(
            (
                r["name"],
                r["val_accuracy"],
                r["test_accuracy"],
                r["latency_ms"]["median"],
                r["latency_ms"]["p90"],
                round(r["size_bytes"] / 1024, 1),
                c["resolution"],
                c["width"],
                "-".join(str(d) for d in c["depths"]),
                c["precision"],
            )
        )
    return format_table(headers, rows)
