"""The terminal front tables of every source: one table builder, each source's columns."""

from __future__ import annotations

from typing import Any

from codesign.compress.search import front_table as trained_table
from codesign.hyper.search import front_table as hyper_table
from codesign.report.table import COLUMNS, pareto_table


def _point(n: int, **candidate: Any) -> dict[str, Any]:
    return {"trial": n, "val_accuracy": 0.9, "test_accuracy": 0.8,
            "latency_ms": {"median": 0.5 * (n + 1), "p90": 0.6 * (n + 1)},
            "size_bytes": 2048, "ram_bytes": 1024, "ram": {"source": "estimate"},
            "layers": [{"precision": "int8"}, {"precision": "int8"}, {"precision": "float16"}],
            "candidate": {"resolution": 32, "prune": {"a": 0.25, "b": 0.5}, **candidate}}


def _lines(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_every_source_builds_its_table_from_the_same_columns() -> None:
    family = pareto_table({"points": [_point(0, depths=[1, 2])],
                           "references": [{**_point(5, depths=[2, 2]), "name": "max-int8"}]})
    assert _lines(family)[2] == ["0", "0.900", "0.800", "500.0", "600.0", "~1.0", "2.0", "32",
                                 "1-2", "38%", "i8:2", "f16:1"]
    assert _lines(family)[3][0] == "max-int8" and "RAM estimated" in family
    hyper = hyper_table({"points": [_point(0, hp={"units": 16, "lr": 0.00123})],
                         "references": []})
    assert _lines(hyper)[0][-1] == "hyperparameters"
    assert _lines(hyper)[2][-2:] == ["units=16", "lr=0.00123"]
    trained = trained_table({"points": [_point(1, model="m.keras")], "references": [
        {**_point(3, model="m.keras"), "name": "original-float32"}]})
    assert [row[4] for row in _lines(trained)[2:]] == ["2.00", "1.00"]  # speed-up
    shared = ("val acc", "test acc", "latency us", "RAM KB", "flash KB", "pruned", "precisions")
    assert set(shared) <= set(COLUMNS)
    for text in (family, hyper, trained):
        assert all(h.split()[0] in text.splitlines()[0] for h in shared)
