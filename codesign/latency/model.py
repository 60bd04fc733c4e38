"""A latency model: non-negative kernel costs fitted to measured networks, saved as JSON.

Latency is predicted as a sum of non-negative coefficients times the features
of :mod:`codesign.latency.features` (a fixed graph overhead, a cost per kernel
by kind and precision that grows with its arithmetic and output, a cost per
precision change that grows with the tensor, a cost per delegate partition).
Fitted by non-negative least squares on relative error. Stored as JSON: loading
a model never runs code from the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import CodesignError

FLOOR_MS = 1e-4  # the least a model without a floor of its own predicts (0.1 µs)
SCHEMA = 5  # 2: reference-network speed factor, re-timed measurements; 3: true MACs;
# 4: depthwise priced per kernel width, weight elements, timings from spread windows;
# 5: input elements per kind and precision (a rebuild refits the kept timings: no re-timing)


def codesign_home() -> Path:
    """Where codesign keeps per-machine data (``$CODESIGN_HOME``, else ``~/.cache/codesign``)."""
    home = os.environ.get("CODESIGN_HOME")
    return Path(home) if home else Path.home() / ".cache" / "codesign"


def latency_dir() -> Path:
    """The folder of latency models, their measurements and converted models."""
    return codesign_home() / "latency"


@dataclass
class LatencyModel:
    """Fitted coefficients of one profile on one machine.

    Attributes:
        profile: The profile's identity (what it measures with).
        coef: Feature name -> milliseconds per unit.
        meta: Runtime, machine, sample counts and fit figures.
    """

    profile: dict[str, Any]
    coef: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """The feature set it was fitted on (see :data:`DETAILS`)."""
        return str(self.meta.get("detail", "fine"))

    @property
    def floor_ms(self) -> float:
        """The least it predicts: half the fastest network it was fitted on.

        Non-negative least squares may zero every coefficient a small network
        has (the graph overhead included); a network still costs an invoke.
        """
        return float(self.meta.get("floor_ms", FLOOR_MS))

    def predict(self, feats: dict[str, float]) -> float:
        """Predicted median latency in milliseconds of a network with these features."""
        feats = at_detail(feats, self.detail)
        return max(float(sum(self.coef.get(k, 0.0) * v for k, v in feats.items())),
                   self.floor_ms)

    def unseen(self, feats: dict[str, float]) -> list[str]:
        """Features of a network that no measured network had (the model cannot price them)."""
        known = set(self.meta.get("features", self.coef))
        return sorted(k for k, v in at_detail(feats, self.detail).items() if v and k not in known)

    def save(self, path: Path) -> None:
        """Write the model as JSON (atomically)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        doc = {"schema": SCHEMA, "profile": self.profile, "coef": self.coef, "meta": self.meta}
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> LatencyModel:
        """Read a model written by :meth:`save`.

        Raises:
            CodesignError: If the file is not a latency model of this schema.
        """
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CodesignError(f"latency model {path} is unreadable ({exc}); rebuild it with "
                                "codesign profile build") from None
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise CodesignError(f"latency model {path} is not schema {SCHEMA}; rebuild it with "
                                "codesign profile build")
        coef = doc.get("coef")
        if not isinstance(coef, dict) or not all(
            isinstance(v, int | float) and math.isfinite(v) for v in coef.values()
        ):
            raise CodesignError(f"latency model {path} has no valid coefficients; rebuild it")
        return cls(profile=doc.get("profile", {}), coef={k: float(v) for k, v in coef.items()},
                   meta=doc.get("meta", {}))


DETAILS = ("fine", "coarse")  # a build fits both and keeps the one that predicts better
_WIDTH = re.compile(r"^(dw|conv)\d+:")


def at_detail(feats: dict[str, float], detail: str) -> dict[str, float]:
    """Features as a model of that detail reads them.

    ``fine`` is every feature of :func:`codesign.latency.features.features`;
    ``coarse`` prices depthwise kernels of every width alike, and k x k
    convolutions of every width alike (``conv3``, ``conv5`` -> ``conv``), and
    leaves out the weight elements: about 130 features instead of 200, which a build of
    a few dozen networks can fit (the fine set fitted on 38 networks missed
    by up to twice the latency; on 400 it is the better one).
    """
    if detail == "fine":
        return feats
    out: dict[str, float] = {}
    for k, v in feats.items():
        if k.endswith(":w"):
            continue
        k = _WIDTH.sub(r"\1:", k)
        out[k] = out.get(k, 0.0) + v
    return out


def fit(feature_rows: list[dict[str, float]], latencies: list[float],
        weights: list[float] | None = None) -> dict[str, float]:
    """Non-negative least squares on relative error.

    Args:
        feature_rows: Features of each measured network.
        latencies: Their measured median latencies (ms).
        weights: Weight of each network's relative error (default 1 each).

    Returns:
        Feature name -> coefficient (ms per unit), every one zero or more.
    """
    from scipy.optimize import nnls

    names = sorted({k for row in feature_rows for k in row})
    a = np.array([[row.get(n, 0.0) for n in names] for row in feature_rows], dtype=np.float64)
    y = np.asarray(latencies, dtype=np.float64)
    scale = np.maximum(a.max(axis=0), 1e-12)  # column scaling keeps NNLS well conditioned
    w = np.ones_like(y) if weights is None else np.sqrt(np.asarray(weights, dtype=np.float64))
    w = w / y  # relative error: every network counts alike, small ones included
    sol, _ = nnls((a / scale) * w[:, None], y * w, maxiter=50 * len(names))
    return {n: float(c / s) for n, c, s in zip(names, sol, scale, strict=True)}


def errors(predicted: list[float], measured: list[float]) -> dict[str, float]:
    """Agreement of predictions with measurements.

    Returns:
        ``within_10pct`` (share of networks within ±10 %), ``mape`` (mean
        absolute percentage error, as a fraction), ``kendall_tau`` and ``n``.
    """
    from scipy.stats import kendalltau

    p, m = np.asarray(predicted), np.asarray(measured)
    rel = np.abs(p - m) / m
    tau = float(kendalltau(p, m).statistic) if len(p) > 1 else float("nan")
    return {"n": len(m), "within_10pct": float(np.mean(rel <= 0.10)), "mape": float(rel.mean()),
            "p90_abs_rel_error": float(np.percentile(rel, 90)),
            "p95_abs_rel_error": float(np.percentile(rel, 95)), "kendall_tau": tau}


def repeatability(records: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """How well the device repeats its own timings of the same networks.

    Args:
        records: Measurement records; those with two or more pass medians count.

    Returns:
        The noise floor (the median over networks of the coefficient of
        variation of their pass medians) and the share of networks whose
        passes agree within ±10 % of the faster one; None without such records.
        On this 2-core VM, two-thread timings of ``xnnpack-2t`` agreed so for
        34 % of networks (noise floor 9.6 %) against one thread's 1-2 %. The
        faster pass is what counts, and it is steadier than either: one
        thread's passes agreed so for 70 % of a check that found 95 % of its
        networks within ±10 % of the model, so a low share bounds a check
        loosely, and at 34 % the device's noise is what a check measures.
    """
    spreads = [np.asarray(r["medians_ms"], dtype=float) for r in records
               if len(r.get("medians_ms", ())) > 1]
    if not spreads:
        return None, None
    cvs = [float(np.std(m) / np.mean(m)) for m in spreads]
    agree = [float(m.max() / m.min() - 1.0 <= 0.10) for m in spreads]
    return float(np.median(cvs)), float(np.mean(agree))
