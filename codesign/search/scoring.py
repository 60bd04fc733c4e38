"""A measurement record as the study sees it: objective values and budget constraints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def objective_values(attrs: Mapping[str, Any], objectives: tuple[str, ...]) -> tuple[float, ...]:
    """Objective values of a measurement record, in the study's order."""
    values = {
        "accuracy": attrs["val_accuracy"],
        "latency": attrs["latency_ms"]["median"],
        "size": attrs["size_bytes"] / 1024,
    }
    return tuple(values[o] for o in objectives)


def constraint_values(attrs: Mapping[str, Any], budgets: Mapping[str, float]
                      ) -> dict[str, float]:
    """Budget constraints of a record (feasible when every value is zero or less).

    Args:
        attrs: The measurement record.
        budgets: ``max_latency_ms``, ``max_size_kb``, ``max_memory_mb`` and
            ``min_accuracy``, those that are set.
    """
    out = {}
    if "max_latency_ms" in budgets:
        out["latency"] = attrs["latency_ms"]["median"] - budgets["max_latency_ms"]
    if "max_size_kb" in budgets:
        out["size"] = attrs["size_bytes"] / 1024 - budgets["max_size_kb"]
    if "max_memory_mb" in budgets:
        mem = attrs["latency_ms"].get("peak_memory_mb")
        out["memory"] = (mem if mem is not None else float("inf")) - budgets["max_memory_mb"]
    if "min_accuracy" in budgets:
        out["accuracy"] = budgets["min_accuracy"] - attrs["val_accuracy"]
    return out
