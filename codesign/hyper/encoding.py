"""Hypermodel evaluations as feature vectors, for an accuracy predictor.

Every evaluated candidate of a hypermodel run is appended to
``RUN/hyper_evaluations.jsonl`` (hyperparameters, prune ratios, channels kept,
precisions, measured accuracy and latency). The space is the user's, so the
vector is built from the names seen: a number per numeric hyperparameter, a
one-hot entry per categorical value, the fraction kept per channel group and a
one-hot precision per layer (named as the built-in encoding names them,
:func:`codesign.predict.encoding.gene_features`). The built-in predictor's gradient-boosted trees
(:class:`codesign.predict.regressors.Boosted`) fit it as they fit the built-in
space's encoding.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from codesign.predict.encoding import gene_features

EVALUATIONS_FILE = "hyper_evaluations.jsonl"


def load_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The run's evaluation records (none if the file is missing)."""
    path = Path(run_dir) / EVALUATIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def features(record: dict[str, Any]) -> dict[str, float]:
    """One evaluation as named features."""
    f: dict[str, float] = {"resolution": float(record["resolution"]),
                           "log10_params": math.log10(max(1, int(record["params"])))}
    for name, value in record["hp"].items():
        if isinstance(value, bool) or value is None or isinstance(value, str):
            f[f"hp/{name}={value}"] = 1.0
        else:
            f[f"hp/{name}"] = float(value)
    f.update(gene_features({g: 1.0 - float(r) for g, r in record["prune"].items()},
                           record["precision"]))
    return f


def feature_matrix(records: Sequence[dict[str, Any]],
                   names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Rows of features (missing entries 0) and their names (sorted, or as given)."""
    rows = [features(r) for r in records]
    cols = list(names) if names is not None else sorted({k for r in rows for k in r})
    x = np.array([[r.get(c, 0.0) for c in cols] for r in rows], dtype=np.float64)
    return x.reshape(len(rows), len(cols)), cols


def fit_accuracy_predictor(records: Sequence[dict[str, Any]]) -> tuple[Any, list[str]]:
    """Gradient-boosted trees from evaluations to validation accuracy.

    Returns:
        ``(regressor, feature names)``; predict with ``feature_matrix(new, names)``.
    """
    from codesign.predict.regressors import Boosted

    x, names = feature_matrix(records)
    y = np.array([r["val_accuracy"] for r in records], dtype=np.float64)
    return Boosted().fit(x, y), names
