"""The accuracy predictor of a run: trained on real evaluations, saved as JSON.

APQ's recipe: many float sub-networks of the supernet are cheap to evaluate
(inherited weights and BN recalibration, no conversion), so the predictor
learns from them first; it is then transferred to quantized candidates with
fewer real TFLite evaluations. Here quantized candidates are also screened
cheaply (the masked supernet with each layer's weights rounded as its
precision stores them, :mod:`codesign.nn.fakequant`), and those screened
samples train the predictor beside the float ones; the converted candidates
then all serve as held-out truth. Two regressors are trained the same way (a
numpy MLP ensemble and gradient-boosted trees) and the one with the better
held-out Kendall tau on quantized candidates is kept. Fidelity is reported
beside two baselines measured in the same run: predicting the mean, and
evaluating the held-out candidates a second time on another calibration draw
(the evaluation's own noise, the ceiling any predictor can reach).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import CodesignError
from codesign.predict.encoding import encode, encode_many, feature_names
from codesign.predict.regressors import MLP, Boosted, from_dict
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec

SCHEMA = 1
HOLDOUT = 0.2
QUANT_FOLDS = 5


@dataclass(frozen=True)
class PredictorSettings:
    """How many real evaluations train the predictor (saved with it).

    Attributes:
        float_samples: Float sub-networks (inherited weights, no conversion).
        quant_samples: Quantized candidates (converted, run in the interpreter).
        seed: Sampling seed.
        screen_samples: Quantized candidates screened through the masked
            supernet with each layer's weights rounded as its precision stores
            them (no conversion, about an eighth of its cost); the predictor
            learns quantization from them beside the float samples.
    """

    float_samples: int = 1000
    quant_samples: int = 100
    seed: int = 0
    screen_samples: int = 0


class AccuracyPredictor:
    """Predicts a candidate's validation accuracy.

    Args:
        space: The search space (fixes the encoding).
        regressor: The fitted regressor.
        meta: Settings, fidelity and which regressor was chosen.
    """

    def __init__(self, space: SpaceSpec, regressor: MLP | Boosted, meta: dict[str, Any]) -> None:
        self.space = space
        self.regressor = regressor
        self.meta = meta

    def predict(self, cand: Candidate) -> float:
        """Predicted validation accuracy of one candidate."""
        return float(self.regressor.predict(encode(self.space, cand)[None, :])[0])

    def predict_many(self, cands: list[Candidate]) -> np.ndarray:
        """Predicted validation accuracy of many candidates."""
        return self.regressor.predict(encode_many(self.space, cands))

    def update(self, cands: list[Candidate], accuracies: list[float]) -> None:
        """Go on learning from new real evaluations of quantized candidates."""
        if len(cands) >= 4:
            self.regressor.transfer(encode_many(self.space, cands), np.asarray(accuracies))

    def save(self, path: Path) -> None:
        """Write as JSON (atomically)."""
        doc = {"schema": SCHEMA, "features": feature_names(self.space),
               "regressor": self.regressor.to_dict(), "meta": self.meta}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, space: SpaceSpec) -> AccuracyPredictor:
        """Read a predictor written by :meth:`save` for the same space.

        Raises:
            CodesignError: If the file is not a predictor of this space.
        """
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CodesignError(f"predictor {path} is unreadable ({exc}); delete it") from None
        if doc.get("schema") != SCHEMA or doc.get("features") != feature_names(space):
            raise CodesignError(f"predictor {path} was made for another space or schema; "
                                "delete it to retrain")
        try:
            regressor = from_dict(doc["regressor"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"predictor {path} is malformed ({exc}); delete it") from None
        return cls(space, regressor, doc.get("meta", {}))


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall tau (0 where either side is constant)."""
    from scipy.stats import kendalltau

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(kendalltau(a, b).statistic)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    """Root mean squared error."""
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def fidelity(pred: np.ndarray, truth: np.ndarray, second: tuple[np.ndarray, np.ndarray],
             train_mean: float | np.ndarray, halves: np.ndarray | None = None
             ) -> dict[str, Any]:
    """Kendall tau and RMSE of a predictor, of the mean, and of a second evaluation.

    Args:
        pred: Predicted accuracies of the held-out candidates.
        truth: Their measured accuracies.
        second: ``(first, again)``: accuracies of held-out candidates (all of
            them or some) as measured, and evaluated a second time on another
            calibration draw.
        train_mean: Mean accuracy of the training candidates (the mean
            baseline); one per candidate where the folds differ.
        halves: Optional ``(n, 2)`` accuracies on the even and the odd validation
            images; adds the ceiling set by the validation set's size.
    """
    first, again = second
    means = np.broadcast_to(np.asarray(train_mean, float), np.shape(truth))
    out: dict[str, Any] = {
        "n": len(truth),
        "predictor": {"kendall_tau": kendall(pred, truth), "rmse": rmse(pred, truth)},
        "mean": {"kendall_tau": 0.0, "rmse": rmse(means, truth)},
        "second_evaluation": {"n": len(first), "kendall_tau": kendall(again, first),
                              "rmse": rmse(again, first)},
    }
    if halves is not None and len(halves) >= 3:
        out["validation_halves"] = validation_ceiling(np.asarray(halves, float), truth)
    return out


def validation_ceiling(halves: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """How well any predictor can track accuracies measured on a finite validation set.

    A second evaluation on the same images shares their sampling noise, so it
    overstates what a predictor (which never sees those images) can reach. The
    accuracies on two disjoint halves of the images estimate that noise: their
    correlation ``r`` gives the full set's reliability ``2r / (1 + r)``
    (Spearman-Brown). A perfect predictor of the true accuracy correlates with
    the measured one at the root of the reliability; its Kendall tau follows
    from that correlation as ``2 / pi * asin(rho)`` (exact for normal errors),
    and its RMSE is the measurement's noise, ``std * sqrt(1 - reliability)``.
    """
    a, b = halves[:, 0], halves[:, 1]
    r = float(np.corrcoef(a, b)[0, 1]) if np.ptp(a) > 0 and np.ptp(b) > 0 else 0.0
    reliability = float(np.clip(2 * r / (1 + r), 0.0, 1.0)) if r > -1 else 0.0
    return {
        "kendall_tau": kendall(a, b),
        "reliability": reliability,
        "ceiling_kendall_tau": float(2 / np.pi * np.arcsin(np.sqrt(reliability))),
        "ceiling_rmse": float(np.std(truth) * np.sqrt(1 - reliability)),
    }


def ceiling_tau(f: dict[str, Any]) -> float:
    """The lower of the two ceilings: a second evaluation, and the validation set's size."""
    tau = f["second_evaluation"]["kendall_tau"]
    if "validation_halves" in f:
        tau = min(tau, f["validation_halves"]["ceiling_kendall_tau"])
    return float(tau)


def meets_target(f: dict[str, Any]) -> bool:
    """Tau 0.8 or more, or within 0.05 of the ceiling; RMSE at most half the mean's."""
    tau = f["predictor"]["kendall_tau"]
    return (tau >= 0.8 or tau >= ceiling_tau(f) - 0.05) and f["predictor"]["rmse"] <= 0.5 * f[
        "mean"]["rmse"]


Evaluate = Callable[[list[Candidate], str, int], list[dict[str, Any] | None]]
KINDS = ("float", "rounded", "quantized")  # what ``Evaluate`` is asked to measure


def train_predictor(space: SpaceSpec, settings: PredictorSettings,
                    choices: dict[str, tuple[str, ...]], evaluate: Evaluate) -> AccuracyPredictor:
    """Sample, evaluate for real, fit both regressors, measure fidelity, keep the better.

    Args:
        space: The search space.
        settings: Sample counts and seed.
        choices: Precisions offered per layer (the quantized samples use them).
        evaluate: ``evaluate(candidates, kind, calib_seed)`` -> one result per
            candidate (None where it failed): ``{"val_accuracy": float}``,
            optionally with ``"halves"`` (accuracy on the even and the odd
            validation images). ``kind`` is one of :data:`KINDS`: the float
            sub-network, the same with each layer's weights rounded as its
            precision stores them (the screen), or the converted file.
    """
    rng = np.random.default_rng(settings.seed + 7919)
    floats = [space.random_candidate(rng) for _ in range(settings.float_samples)]
    quants = [_mixed(space, rng, choices) for _ in range(settings.quant_samples)]
    screens = [_mixed(space, rng, choices) for _ in range(settings.screen_samples)]
    sets = {name: _sample_set(cands, kind, evaluate)
            for name, cands, kind in (("float", floats, "float"),
                                      ("quantized", quants, "quantized"))}
    if len(sets["float"]["train"][0]) < 8 or len(sets["quantized"]["train"][0]) < 4:
        raise CodesignError("too few sub-networks could be evaluated to train the accuracy "
                            "predictor; see logs/worker.log")
    fl, qu = sets["float"], sets["quantized"]
    q_cands = qu["train"][0] + qu["held"][0]
    q_y = np.concatenate([qu["train"][1], qu["held"][1]])
    q_x = encode_many(space, q_cands)
    screen_x, screen_y, screen_meta = _screens(space, screens, q_cands, q_y, evaluate)
    folds = np.array_split(np.random.default_rng(settings.seed).permutation(len(q_y)),
                           min(QUANT_FOLDS, len(q_y)))
    report: dict[str, Any] = {}
    xf, yf = encode_many(space, fl["train"][0]), fl["train"][1]
    for name, reg in {"mlp": MLP(seed=settings.seed),
                      "boosted": Boosted(seed=settings.seed)}.items():
        if len(screen_y):
            # screened samples learn quantization beside the float ones; every converted
            # sample is then held out
            reg.fit(np.vstack([xf, screen_x]), np.concatenate([yf, screen_y]))
            quant_pred = reg.predict(q_x)
            fold_means: np.ndarray | float = float(np.mean(screen_y))
        else:  # converted samples are few: each is predicted by a transfer on the others
            reg.fit(xf, yf)
            quant_pred, fold_means = np.zeros(len(q_y)), np.zeros(len(q_y))
            for fold in folds:
                rest = np.setdiff1d(np.arange(len(q_y)), fold)
                transferred = copy.deepcopy(reg).transfer(q_x[rest], q_y[rest])
                quant_pred[fold] = transferred.predict(q_x[fold])
                fold_means[fold] = float(np.mean(q_y[rest]))
        float_pred = reg.predict(encode_many(space, fl["held"][0]))
        report[name] = {
            "float": fidelity(float_pred, fl["held"][1], (fl["held"][1], fl["held"][2]),
                              float(np.mean(yf)), fl["halves"]),
            "quantized": fidelity(quant_pred, q_y, (qu["held"][1], qu["held"][2]), fold_means,
                                  qu["all_halves"]),
        }
    chosen = max(report, key=lambda n: (report[n]["quantized"]["predictor"]["kendall_tau"],
                                        -report[n]["quantized"]["predictor"]["rmse"]))
    # the kept regressor learns from every evaluation, held-out ones included
    final = MLP(seed=settings.seed) if chosen == "mlp" else Boosted(seed=settings.seed)
    all_x = np.vstack([xf, encode_many(space, fl["held"][0])])
    all_y = np.concatenate([yf, fl["held"][1]])
    if len(screen_y):
        final.fit(np.vstack([all_x, screen_x, q_x]), np.concatenate([all_y, screen_y, q_y]))
    else:
        final.fit(all_x, all_y).transfer(q_x, q_y)
    meta = {"settings": asdict(settings), "chosen": chosen, "fidelity": report,
            "screen": screen_meta,
            "meets_target": all(meets_target(report[chosen][part])
                                for part in ("float", "quantized"))}
    return AccuracyPredictor(space, final, meta)


def _sample_set(cands: list[Candidate], kind: str, evaluate: Evaluate) -> dict[str, Any]:
    """Evaluate training and held-out candidates (the held-out ones twice)."""
    cut = max(2, int(round(len(cands) * (1 - HOLDOUT))))
    train, held = cands[:cut], cands[cut:]
    r_train = evaluate(train, kind, 0)
    r_held = evaluate(held, kind, 0)
    r_again = evaluate(held, kind, 1)
    keep_t = [i for i, v in enumerate(r_train) if v is not None]
    keep_h = [i for i, (a, b) in enumerate(zip(r_held, r_again, strict=True))
              if a is not None and b is not None]
    held_res = [r_held[i] for i in keep_h]
    every = [r_train[i] for i in keep_t] + held_res
    return {
        "halves": _halves(held_res), "all_halves": _halves(every),
        "train": ([train[i] for i in keep_t],
                  np.array([r_train[i]["val_accuracy"] for i in keep_t])),
        "held": ([held[i] for i in keep_h], np.array([r["val_accuracy"] for r in held_res]),
                 np.array([r_again[i]["val_accuracy"] for i in keep_h])),
    }


def _screens(space: SpaceSpec, screens: list[Candidate], q_cands: list[Candidate],
             q_y: np.ndarray, evaluate: Evaluate
             ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """The screened samples as features and accuracies, and how well screening agrees.

    The converted samples are screened too: how closely the screen tracks
    what conversion gives is reported beside the predictor's fidelity.
    """
    if not screens:
        return np.zeros((0, len(feature_names(space))), np.float32), np.zeros(0), {"n": 0}
    res = evaluate(screens, "rounded", 0)
    keep = [i for i, r in enumerate(res) if r is not None]
    x = encode_many(space, [screens[i] for i in keep])
    y = np.array([res[i]["val_accuracy"] for i in keep])
    again = evaluate(q_cands, "rounded", 0)
    pairs = [(r["val_accuracy"], t) for r, t in zip(again, q_y, strict=True) if r is not None]
    a, t = (np.array(v) for v in zip(*pairs, strict=True)) if pairs else (np.zeros(0),) * 2
    meta = {"n": len(y), "against_converted": {"n": len(a), "kendall_tau": kendall(a, t),
                                               "rmse": rmse(a, t)}}
    return x, y, meta


def _halves(results: list[dict[str, Any]]) -> np.ndarray | None:
    """The ``(n, 2)`` half-set accuracies of results, if every one has them."""
    if len(results) < 3 or not all(r.get("halves") for r in results):
        return None
    return np.array([r["halves"] for r in results], dtype=float)


def _mixed(space: SpaceSpec, rng: np.random.Generator, choices: dict[str, tuple[str, ...]]
           ) -> Candidate:
    """A random candidate whose precisions are one per network (half) or per layer (half)."""
    base = space.random_candidate(rng)
    names = space.layer_names()
    if rng.random() < 0.5:
        common = sorted(set.intersection(*(set(choices[n]) for n in names)))
        p = str(rng.choice(common))
        prec = {n: p for n in names}
    else:
        prec = {n: str(rng.choice(choices[n])) for n in names}
    return base.with_precisions(prec)
