"""The measured Pareto front and the files that publish it.

``pareto.json`` (schema version 3) is documented in ``docs/pareto-schema.md``;
:func:`read_pareto` also reads schemas 1 (runs of codesign before RAM was
recorded) and 2 (before references no trial dominates were marked ``offered``).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from codesign.report.manifest import build_manifest

SCHEMA_VERSION = 3
READABLE = (1, 2, 3)  # 1: no ram_bytes / flash_bytes, an RSS figure instead; 2: no offered
READABLE_TEXT = f"{', '.join(map(str, READABLE[:-1]))} and {READABLE[-1]}"


def pareto_indices(
    points: Sequence[Sequence[float]], directions: Sequence[str] = ("maximize", "minimize")
) -> list[int]:
    """Indices of the non-dominated points.

    Args:
        points: One tuple of objective values per point (accuracy first,
            latency second, optionally size).
        directions: ``maximize`` or ``minimize`` per objective.

    Returns:
        Indices of the points no other point dominates, by ascending latency.
    """
    sign = [1.0 if d == "maximize" else -1.0 for d in directions]
    scored = [[v * s for v, s in zip(p, sign, strict=True)] for p in points]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    front = [
        i for i, p in enumerate(scored)
        if not any(dominates(q, p) for j, q in enumerate(scored) if j != i)
    ]
    return sorted(front, key=lambda i: (points[i][1], -points[i][0]))


def feasible(t: FrozenTrial) -> bool:
    """Whether a trial meets every budget (all constraint values zero or less)."""
    return all(v <= 0 for v in t.constraints.values())


def violation(t: FrozenTrial) -> float:
    """Sum of the positive constraint values: how far a trial is from the budgets."""
    return sum(v for v in t.constraints.values() if v > 0)


def front_trials(
    trials: Sequence[FrozenTrial], directions: Sequence[str] = ("maximize", "minimize")
) -> list[FrozenTrial]:
    """The feasible COMPLETE trials on the Pareto front of their objective values."""
    ok = [t for t in trials if feasible(t)]
    return [ok[i] for i in pareto_indices([tuple(t.values) for t in ok], directions)]


def memory_fields(attrs: dict[str, Any]) -> dict[str, Any]:
    """``ram_bytes``, ``flash_bytes`` and ``ram`` (head, tail, source) of a measurement."""
    ram = attrs.get("ram") or {}
    return {"ram_bytes": ram.get("bytes"), "flash_bytes": attrs["size_bytes"],
            "ram": {k: ram.get(k) for k in ("head_bytes", "tail_bytes", "recorded_bytes", "source")}
            if ram else None}


def point_record(number: int, attrs: dict[str, Any]) -> dict[str, Any]:
    """One ``points`` entry of ``pareto.json`` from a point's final measurements."""
    lat = attrs["latency_ms"]
    record = {
        "trial": number,
        "val_accuracy": attrs["val_accuracy"],
        "test_accuracy": attrs["test_accuracy"],
        "latency_ms": {"median": lat["median"], "p90": lat["p90"], "std": lat["std"],
                       "device": lat.get("device"), "runtime": lat.get("runtime"),
                       "predicted": attrs.get("latency_predicted_ms"),
                       **({"stand_in": lat["stand_in"]} if lat.get("stand_in") else {}),
                       **({"timed": lat["timed"]} if lat.get("timed") else {})},
        **memory_fields(attrs),
        "size_bytes": attrs["size_bytes"],
        "size_gzip_bytes": attrs["size_gzip_bytes"],
        "model": f"models/trial-{number}.tflite",
        "manifest": f"models/trial-{number}.json",
        "candidate": attrs["candidate"],
        "layers": attrs["layers"],
    }
    for key in ("search", "finetune"):
        if key in attrs:
            record[key] = attrs[key]
    return record


def read_pareto(doc: dict[str, Any]) -> dict[str, Any]:
    """A ``pareto.json`` document of a readable schema, its points as schema 3 has them.

    Schema 1 points and references get ``flash_bytes`` (their file size) and
    ``ram_bytes`` None (not recorded); references of schemas 1 and 2 get
    ``offered`` None (not recorded). ``schema_version`` stays what the file says.

    Raises:
        ValueError: If the schema version is not one of :data:`READABLE`.
    """
    version = doc.get("schema_version")
    if version not in READABLE:
        raise ValueError(f"schema_version {version!r}")
    if version == 1:
        for rec in [*doc.get("points", []), *doc.get("references", [])]:
            rec.setdefault("flash_bytes", rec.get("size_bytes"))
            rec.setdefault("ram_bytes", None)
            rec.setdefault("ram", None)
    for ref in doc.get("references", []):
        ref.setdefault("offered", None)
    return doc


def write_front(
    root: Path,
    front: Sequence[tuple[int, dict[str, Any], Path]],
    references: Sequence[dict[str, Any]],
    run_info: dict[str, Any],
    data_info: dict[str, Any],
    profile_info: dict[str, Any],
) -> dict[str, Any]:
    """Copy the front's models with manifests and write ``pareto.json`` and ``.csv``.

    Args:
        root: The run directory.
        front: ``(trial number, final measurements, model file)`` per point.
        references: Reference records.
        run_info: The ``run`` section.
        data_info: Data set name, seed, labels and preprocessing.
        profile_info: The profile as a dict.

    Models of trials that left the front (after a rerun with more trials) are
    removed from ``models/``; every model stays in ``cache/``.

    Returns:
        The ``pareto.json`` document.
    """
    models = root / "models"
    models.mkdir(parents=True, exist_ok=True)
    keep = set()
    for number, attrs, src in front:
        dst = models / f"trial-{number}.tflite"
        shutil.copyfile(src, dst)
        manifest = build_manifest(number, attrs, data_info, profile_info)
        _write_json(models / f"trial-{number}.json", manifest)
        keep |= {dst.name, f"trial-{number}.json"}
    for stale in models.glob("trial-*"):
        if stale.name not in keep:
            stale.unlink()
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": run_info,
        "points": [point_record(number, attrs) for number, attrs, _ in sorted(
            front, key=lambda f: (f[1]["latency_ms"]["median"], -f[1]["val_accuracy"]))],
        "references": [{**r, **memory_fields(r)} for r in references],
    }
    _write_json(root / "pareto.json", doc)
    _write_csv(root / "pareto.csv", doc["points"])
    return doc


CSV_FIELDS = (
    "trial",
    "val_accuracy",
    "test_accuracy",
    "latency_median_ms",
    "latency_p90_ms",
    "latency_std_ms",
    "size_bytes",
    "size_gzip_bytes",
    "ram_bytes",
    "flash_bytes",
    "model",
    "candidate",
)


def _write_csv(path: Path, points: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for p in points:
            w.writerow(
                {
                    "trial": p["trial"],
                    "val_accuracy": p["val_accuracy"],
                    "test_accuracy": p["test_accuracy"],
                    "latency_median_ms": p["latency_ms"]["median"],
                    "latency_p90_ms": p["latency_ms"]["p90"],
                    "latency_std_ms": p["latency_ms"]["std"],
                    "size_bytes": p["size_bytes"],
                    "size_gzip_bytes": p["size_gzip_bytes"],
                    "ram_bytes": p["ram_bytes"],
                    "flash_bytes": p["flash_bytes"],
                    "model": p["model"],
                    "candidate": json.dumps(p["candidate"], sort_keys=True),
                }
            )
    tmp.replace(path)


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False))
    tmp.replace(path)
