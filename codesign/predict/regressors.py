"""Two accuracy regressors that save as plain JSON: a numpy MLP and gradient-boosted trees.

Neither is pickled: the MLP's weights and the trees' arrays are lists in JSON,
and prediction is numpy code here, so loading a predictor never runs code
from a file.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class MLP:
    """A small ensemble of two-hidden-layer ReLU networks, trained with Adam on MSE.

    Args:
        hidden: Width of both hidden layers.
        members: Networks averaged (different seeds).
        seed: Seed of the first member.
    """

    def __init__(self, hidden: int = 64, members: int = 5, seed: int = 0) -> None:
        self.hidden = hidden
        self.members = members
        self.seed = seed
        self.nets: list[list[np.ndarray]] = []
        self.y_mean = 0.0
        self.y_std = 1.0

    def _init(self, n_in: int, rng: np.random.Generator) -> list[np.ndarray]:
        sizes = [n_in, self.hidden, self.hidden, 1]
        params = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            params.append(rng.normal(0.0, np.sqrt(2.0 / a), (a, b)).astype(np.float64))
            params.append(np.zeros(b))
        return params

    @staticmethod
    def _forward(params: list[np.ndarray], x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        acts = [x]
        h = x
        for i in range(0, len(params) - 2, 2):
            h = np.maximum(h @ params[i] + params[i + 1], 0.0)
            acts.append(h)
        return (h @ params[-2] + params[-1])[:, 0], acts

    def _train(self, params: list[np.ndarray], train: tuple[np.ndarray, np.ndarray],
               held_out: tuple[np.ndarray, np.ndarray], epochs: int, lr: float, decay: float,
               rng: np.random.Generator) -> list[np.ndarray]:
        (x, y), (xv, yv) = train, held_out
        m = [np.zeros_like(p) for p in params]
        v = [np.zeros_like(p) for p in params]
        best, best_loss, wait, step = [p.copy() for p in params], np.inf, 0, 0
        batch = min(64, len(x))
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                pred, acts = self._forward(params, x[idx])
                grad_out = (2.0 / len(idx)) * (pred - y[idx])[:, None]
                grads: list[np.ndarray] = [np.empty(0)] * len(params)
                g = grad_out
                for layer in range(len(params) // 2 - 1, -1, -1):
                    w = params[2 * layer]
                    grads[2 * layer] = acts[layer].T @ g + decay * w
                    grads[2 * layer + 1] = g.sum(axis=0)
                    if layer:
                        g = (g @ w.T) * (acts[layer] > 0)
                step += 1
                for i, (p, gr) in enumerate(zip(params, grads, strict=True)):
                    m[i] = 0.9 * m[i] + 0.1 * gr
                    v[i] = 0.999 * v[i] + 0.001 * gr * gr
                    mh, vh = m[i] / (1 - 0.9**step), v[i] / (1 - 0.999**step)
                    p -= lr * mh / (np.sqrt(vh) + 1e-8)
            loss = float(np.mean((self._forward(params, xv)[0] - yv) ** 2))
            if loss < best_loss - 1e-6:
                best, best_loss, wait = [p.copy() for p in params], loss, 0
            else:
                wait += 1
                if wait >= 30:
                    break
        return best

    def fit(self, x: np.ndarray, y: np.ndarray, epochs: int = 800, lr: float = 3e-3,
            decay: float = 1e-3) -> MLP:
        """Train from scratch (20 % of the rows held out for early stopping)."""
        self.y_mean, self.y_std = float(np.mean(y)), float(np.std(y)) or 1.0
        self.nets = []
        for k in range(self.members):
            rng = np.random.default_rng(self.seed + k)
            tr, va = _split(len(x), rng)
            ys = (y - self.y_mean) / self.y_std
            params = self._init(x.shape[1], rng)
            self.nets.append(self._train(params, (x[tr], ys[tr]), (x[va], ys[va]), epochs, lr,
                                         decay, rng))
        return self

    def transfer(self, x: np.ndarray, y: np.ndarray, epochs: int = 200, lr: float = 3e-4,
                 decay: float = 1e-3) -> MLP:
        """Go on training every member on new data (APQ's predictor transfer)."""
        ys = (y - self.y_mean) / self.y_std
        for k, params in enumerate(self.nets):
            rng = np.random.default_rng(self.seed + 100 + k)
            tr, va = _split(len(x), rng)
            self.nets[k] = self._train([p.copy() for p in params], (x[tr], ys[tr]),
                                       (x[va], ys[va]), epochs, lr, decay, rng)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted accuracy of each row."""
        x = np.asarray(x, dtype=np.float64)
        out = np.mean([self._forward(p, x)[0] for p in self.nets], axis=0)
        return out * self.y_std + self.y_mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable weights."""
        return {"kind": "mlp", "hidden": self.hidden, "y_mean": self.y_mean,
                "y_std": self.y_std, "nets": [[p.tolist() for p in net] for net in self.nets]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MLP:
        """Rebuild from :meth:`to_dict`."""
        mlp = cls(hidden=int(d["hidden"]), members=len(d["nets"]))
        mlp.y_mean, mlp.y_std = float(d["y_mean"]), float(d["y_std"])
        mlp.nets = [[np.asarray(p, dtype=np.float64) for p in net] for net in d["nets"]]
        return mlp


class Boosted:
    """Gradient-boosted regression trees (scikit-learn fits them; prediction is numpy).

    Transfer fits a second ensemble on the residuals of the first over the new data.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.stages: list[dict[str, Any]] = []  # each: {"init", "rate", "trees"}
        self._packed: list[tuple[np.ndarray, ...]] = []  # the trees as arrays, per stage

    def _fit_stage(self, x: np.ndarray, y: np.ndarray, n: int) -> dict[str, Any]:
        from sklearn.ensemble import GradientBoostingRegressor

        gb = GradientBoostingRegressor(n_estimators=n, learning_rate=0.05, max_depth=3,
                                       subsample=0.8, random_state=self.seed)
        gb.fit(x, y)
        trees = []
        for est in gb.estimators_[:, 0]:
            t = est.tree_
            trees.append({"left": t.children_left.tolist(), "right": t.children_right.tolist(),
                          "feature": t.feature.tolist(), "threshold": t.threshold.tolist(),
                          "value": t.value[:, 0, 0].tolist()})
        return {"init": float(gb.init_.constant_[0, 0]), "rate": gb.learning_rate,
                "trees": trees}

    def fit(self, x: np.ndarray, y: np.ndarray) -> Boosted:
        """Fit from scratch."""
        self._packed = []
        self.stages = [self._fit_stage(x, y, 300)]
        return self

    def transfer(self, x: np.ndarray, y: np.ndarray) -> Boosted:
        """Add a stage fitted on the residuals over new data."""
        self.stages.append(self._fit_stage(x, y - self.predict(x), 100))
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted accuracy of each row."""
        x = np.asarray(x, dtype=np.float64)
        if len(self._packed) != len(self.stages):
            self._packed = [_pack(stage["trees"]) for stage in self.stages]
        out = np.zeros(len(x))
        for stage, packed in zip(self.stages, self._packed, strict=True):
            out += stage["init"] + stage["rate"] * _forest_predict(packed, x)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable trees."""
        return {"kind": "boosted", "stages": self.stages}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Boosted:
        """Rebuild from :meth:`to_dict`."""
        b = cls()
        b.stages = d["stages"]
        return b


def _pack(trees: list[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    """Stack trees into ``(trees, nodes)`` arrays (leaves point to themselves)."""
    width = max(len(t["value"]) for t in trees)
    left = np.zeros((len(trees), width), np.int64)
    right = np.zeros((len(trees), width), np.int64)
    feature = np.zeros((len(trees), width), np.int64)
    threshold = np.zeros((len(trees), width))
    value = np.zeros((len(trees), width))
    for i, t in enumerate(trees):
        n = len(t["value"])
        idx = np.arange(n)
        lft, rgt = np.asarray(t["left"]), np.asarray(t["right"])
        leaf = lft == -1
        left[i, :n] = np.where(leaf, idx, lft)
        right[i, :n] = np.where(leaf, idx, rgt)
        feature[i, :n] = np.where(leaf, 0, np.asarray(t["feature"]))
        threshold[i, :n] = np.asarray(t["threshold"])
        value[i, :n] = np.asarray(t["value"])
    depth = max(_depth(t) for t in trees)
    return left, right, feature, threshold, value, np.array(depth)


def _depth(tree: dict[str, Any]) -> int:
    stack, deepest = [(0, 0)], 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if tree["left"][node] != -1:
            stack += [(tree["left"][node], d + 1), (tree["right"][node], d + 1)]
    return deepest


def _forest_predict(packed: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    """Sum of every tree's prediction for each row, all trees stepped together."""
    left, right, feature, threshold, value, depth = packed
    trees = np.arange(left.shape[0])[None, :]
    node = np.zeros((len(x), left.shape[0]), np.int64)
    rows = np.arange(len(x))[:, None]
    for _ in range(int(depth)):
        go_left = x[rows, feature[trees, node]] <= threshold[trees, node]
        node = np.where(go_left, left[trees, node], right[trees, node])
    return value[trees, node].sum(axis=1)


def _split(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    cut = max(1, int(0.8 * n))
    return order[:cut], order[cut:] if cut < n else order[:1]


def from_dict(d: dict[str, Any]) -> MLP | Boosted:
    """Rebuild a regressor saved with ``to_dict``."""
    if d.get("kind") == "mlp":
        return MLP.from_dict(d)
    if d.get("kind") == "boosted":
        return Boosted.from_dict(d)
    raise ValueError(f"unknown regressor kind {d.get('kind')!r}")
