"""The numbers behind the report's figures: fidelity, layers, stage times, devices.

Pure functions of the loaded records (no plotting, no I/O).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from codesign.report.load import RunData, TrialRecord

STAGES = ("build", "bn_recalibration", "conversion", "accuracy", "latency")
PRECISIONS = ("float32", "float16", "int16x8", "int8", "int4")


def latency_unit(values_ms: Sequence[float]) -> tuple[float, str]:
    """Scale and unit to show latencies in: microseconds below a millisecond.

    Args:
        values_ms: Latencies in milliseconds.

    Returns:
        ``(factor, unit)``: multiply milliseconds by ``factor`` to get ``unit``.
    """
    finite = [v for v in values_ms if v is not None and math.isfinite(v)]
    if finite and max(finite) < 1.0:
        return 1000.0, "µs"
    return 1.0, "ms"


def candidate_key(candidate: dict[str, Any]) -> str:
    """A canonical text of a candidate, equal for equal architectures and precisions."""
    return json.dumps(candidate, sort_keys=True)


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b rank correlation of two paired sequences (None below 2 pairs)."""
    n = len(a)
    if n < 2:
        return None
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else None


def fidelity(predicted: Sequence[float], measured: Sequence[float]) -> dict[str, Any]:
    """How well predictions match measurements.

    Args:
        predicted: Predicted values.
        measured: The measured values, paired.

    Returns:
        ``n``, ``mape`` (mean absolute percentage error), ``within_10pct``
        (fraction within ±10 % of measured), ``rmse``, ``mae`` and
        ``kendall_tau``; error figures are None without pairs.
    """
    pairs = [(p, m) for p, m in zip(predicted, measured, strict=True)
             if p is not None and m is not None]
    n = len(pairs)
    if not n:
        return {"n": 0, "mape": None, "within_10pct": None, "rmse": None, "mae": None,
                "kendall_tau": None}
    err = [p - m for p, m in pairs]
    rel = [abs(p - m) / abs(m) for p, m in pairs if m]
    return {
        "n": n,
        "mape": sum(rel) / len(rel) if rel else None,
        "within_10pct": sum(r <= 0.10 for r in rel) / len(rel) if rel else None,
        "rmse": math.sqrt(sum(e * e for e in err) / n),
        "mae": sum(abs(e) for e in err) / n,
        "kendall_tau": kendall_tau([p for p, _ in pairs], [m for _, m in pairs]),
    }


@dataclass(frozen=True)
class LayerCell:
    """One layer of one model in the per-layer picture.

    Attributes:
        name: Layer name (of the maximal network).
        kind: ``conv``, ``depthwise`` or ``dense``.
        channels: Output channels the model keeps (None: the model lacks the layer).
        max_channels: Output channels of the maximal network (None if unknown).
        precision: The layer's precision (None: the model lacks the layer).
    """

    name: str
    kind: str
    channels: int | None
    max_channels: int | None
    precision: str | None

    @property
    def kept(self) -> float | None:
        """Fraction of the maximal network's channels kept (None if absent or unknown)."""
        if self.channels is None or not self.max_channels:
            return None
        return self.channels / self.max_channels


def layer_cells(point: dict[str, Any], run: RunData) -> list[LayerCell]:
    """The per-layer picture of one model, over every layer of the maximal network.

    Layers the model does not have (a shallower stage) are included with
    ``channels`` None, so models line up column by column.
    """
    full = max_layers(run)
    have = {layer["name"]: layer for layer in point.get("layers", [])}
    order = [layer["name"] for layer in full] or list(have)
    known = {layer["name"]: layer for layer in full}
    cells = []
    for name in order:
        ref = known.get(name, {})
        mine = have.get(name)
        cells.append(LayerCell(
            name=name,
            kind=str((mine or ref).get("kind", "")),
            channels=int(mine["channels"]) if mine else None,
            max_channels=int(ref["channels"]) if ref.get("channels") else None,
            precision=str(mine["precision"]) if mine else None,
        ))
    return cells


def max_layers(run: RunData) -> list[dict[str, Any]]:
    """Layers of the maximal network (from the float32 reference), in network order."""
    refs = sorted(run.references, key=lambda r: r.get("name") != "max-float32")
    for ref in refs:
        if ref.get("layers"):
            return list(ref["layers"])
    return []


def stage_seconds(trials: Sequence[TrialRecord]) -> dict[str, list[float]]:
    """Seconds per stage of every COMPLETE trial, in trial order.

    Returns:
        One list per stage (``build`` ... ``latency``, then ``other``: what the
        total holds beyond the named stages), each as long as the trials.
    """
    done = [t for t in trials if t.complete and isinstance(t.attrs.get("times"), dict)]
    names = list(STAGES) + sorted({k for t in done for k in t.attrs["times"]}
                                  - set(STAGES) - {"total"})
    out: dict[str, list[float]] = {n: [] for n in names}
    out["other"] = []
    for t in done:
        times = t.attrs["times"]
        named = 0.0
        for n in names:
            v = float(times.get(n, 0.0) or 0.0)
            out[n].append(v)
            named += v
        total = float(times.get("total", named) or named)
        out["other"].append(max(0.0, total - named))
    return {n: v for n, v in out.items() if any(x > 0 for x in v)}


def hypervolume_box(run: RunData) -> tuple[list[float], float]:
    """Reference point of the hypervolume and the volume of the box it spans.

    Accuracy (maximized) is bounded by 0 and 1; a minimized objective by 0
    and 1.1 times its largest value among COMPLETE trials. The hypervolume
    divided by the box volume is the fraction of the box the front dominates.
    """
    ref, box = [], 1.0
    for i, direction in enumerate(run.directions):
        values = [t.values[i] for t in run.complete if len(t.values) > i]
        if direction == "maximize":
            ref.append(0.0)
            box *= 1.0
        else:
            top = 1.1 * max(values, default=1.0) or 1.0
            ref.append(top)
            box *= top
    return ref, box


@dataclass(frozen=True)
class DeviceCell:
    """What one chosen model costs on one run's device.

    Attributes:
        latency_ms: Measured latency median there (None: not measured there).
        source: Where the figure comes from (``front``, ``reference``, ``trial N``).
    """

    latency_ms: float | None
    source: str


def measured_latencies(run: RunData) -> dict[str, DeviceCell]:
    """Measured latency median per candidate in one run (front, references, trials)."""
    out: dict[str, DeviceCell] = {}
    for t in run.complete:
        cand = t.attrs.get("candidate")
        lat = t.attrs.get("latency_ms") or {}
        if isinstance(cand, dict) and t.latency_measured and lat.get("median") is not None:
            out.setdefault(candidate_key(cand), DeviceCell(float(lat["median"]),
                                                           f"trial {t.number}"))
    for ref in run.references:
        out[candidate_key(ref["candidate"])] = DeviceCell(
            float(ref["latency_ms"]["median"]), str(ref.get("name", "reference")))
    for p in run.points:
        out[candidate_key(p["candidate"])] = DeviceCell(
            float(p["latency_ms"]["median"]), f"front, trial {p['trial']}")
    return out


@dataclass(frozen=True)
class CrossRow:
    """One chosen model and its measured cost on every run's device.

    Attributes:
        home: Index of the run that chose it.
        name: ``trial N`` or a reference's name.
        val_accuracy: Its validation accuracy in the run that chose it.
        cells: One cell per run, in the order of the runs.
    """

    home: int
    name: str
    val_accuracy: float
    cells: list[DeviceCell]


def cross_device(runs: Sequence[RunData]) -> list[CrossRow]:
    """What each run's chosen models (its front and references) cost on the others.

    A cell holds a measurement only where that run measured the very same
    candidate (same resolution, depths, pruning and precisions); otherwise it
    is marked as not measured. Nothing is estimated.
    """
    tables = [measured_latencies(r) for r in runs]
    rows = []
    for home, run in enumerate(runs):
        chosen = [(f"trial {p['trial']}", p) for p in run.points]
        if home == 0:  # the references are the same networks in every run: list them once
            chosen += [(str(r.get("name", "reference")), r) for r in run.references]
        for name, rec in chosen:
            key = candidate_key(rec["candidate"])
            cells = [t.get(key, DeviceCell(None, "not measured")) for t in tables]
            rows.append(CrossRow(home, name, float(rec["val_accuracy"]), cells))
    return rows


def precision_of(cells: Sequence[LayerCell]) -> dict[str, int]:
    """Count of present layers per precision."""
    counts: dict[str, int] = {}
    for c in cells:
        if c.precision is not None:
            counts[c.precision] = counts.get(c.precision, 0) + 1
    return counts


def ram_label(run: RunData) -> str:
    """Where the run's RAM figures come from, in a few words (for headers and axes)."""
    sources = {(r.get("ram") or {}).get("source") for r in [*run.points, *run.references]}
    if "tflm" in sources:
        return "TFLM arena"
    if "estimate" in sources:
        return "estimated arena"
    return "not recorded"


def stand_in(run: RunData) -> str:
    """The label a latency carries when it is a host stand-in (TFLM), else empty."""
    for rec in [*run.points, *run.references]:
        if (rec.get("latency_ms") or {}).get("stand_in"):
            return "host TFLM stand-in"
    return ""


def reference_name(ref: dict[str, Any]) -> str:
    """A reference's name as shown, saying when no trial dominates it (``offered``)."""
    name = str(ref.get("name", "reference"))
    return f"{name} (no trial dominates it)" if ref.get("offered") else name
