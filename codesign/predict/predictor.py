"""The accuracy predictor of a run: trained on real evaluations, saved as JSON.

APQ's recipe: many float sub-networks of the supernet are cheap to evaluate
(inherited weights and BN recalibration, no conversion), so the predictor
learns from them first; it is then transferred to quantized candidates with
fewer real TFLite evaluations. Two regressors are trained the same way (a
numpy MLP ensemble and gradient-boosted trees) and the one with the better
held-out Kendall tau on quantized candidates is kept. Fidelity is reported
beside two baselines measured in the same run: predicting the mean, and
evaluating the held-out candidates a second time on another calibration draw
(the evaluation's own noise, the ceiling any predictor can reach).
"""

from __future__ import annotations

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


@dataclass(frozen=True)
class PredictorSettings:
    """How many real evaluations train the predictor (saved with it).

    Attributes:
        float_samples: Float sub-networks (inherited weights, no conversion).
        quant_samples: Quantized candidates (converted, run in the interpreter).
        seed: Sampling seed.
    """

    float_samples: int = 300
    quant_samples: int = 100
    seed: int = 0


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


def fidelity(pred: np.ndarray, truth: np.ndarray, again: np.ndarray, train_mean: float
             ) -> dict[str, Any]:
    """Kendall tau and RMSE of a predictor, of the mean, and of a second evaluation."""
    return {
        "n": len(truth),
        "predictor": {"kendall_tau": kendall(pred, truth), "rmse": rmse(pred, truth)},
        "mean": {"kendall_tau": 0.0, "rmse": rmse(np.full(len(truth), train_mean), truth)},
        "second_evaluation": {"kendall_tau": kendall(again, truth), "rmse": rmse(again, truth)},
    }


def meets_target(f: dict[str, Any]) -> bool:
    """Tau 0.8 or more, or within 0.05 of the ceiling; RMSE at most half the mean's."""
    tau, ceiling = f["predictor"]["kendall_tau"], f["second_evaluation"]["kendall_tau"]
    return (tau >= 0.8 or tau >= ceiling - 0.05) and f["predictor"]["rmse"] <= 0.5 * f[
        "mean"]["rmse"]


Evaluate = Callable[[list[Candidate], bool, int], list[float | None]]


def train_predictor(space: SpaceSpec, settings: PredictorSettings,
                    choices: dict[str, tuple[str, ...]], evaluate: Evaluate) -> AccuracyPredictor:
    """Sample, evaluate for real, fit both regressors, measure fidelity, keep the better.

    Args:
        space: The search space.
        settings: Sample counts and seed.
        choices: Precisions offered per layer (the quantized samples use them).
        evaluate: ``evaluate(candidates, quantized, calib_seed)`` -> accuracies
            (None where the candidate failed).
    """
    rng = np.random.default_rng(settings.seed + 7919)
    floats = [space.random_candidate(rng) for _ in range(settings.float_samples)]
    quants = [_mixed(space, rng, choices) for _ in range(settings.quant_samples)]
    sets = {}
    for name, cands, quantized in (("float", floats, False), ("quantized", quants, True)):
        cut = max(2, int(round(len(cands) * (1 - HOLDOUT))))
        train, held = cands[:cut], cands[cut:]
        y_train = evaluate(train, quantized, 0)
        y_held = evaluate(held, quantized, 0)
        y_again = evaluate(held, quantized, 1)
        keep_t = [i for i, v in enumerate(y_train) if v is not None]
        keep_h = [i for i, (a, b) in enumerate(zip(y_held, y_again, strict=True))
                  if a is not None and b is not None]
        sets[name] = {
            "train": ([train[i] for i in keep_t], np.array([y_train[i] for i in keep_t])),
            "held": ([held[i] for i in keep_h], np.array([y_held[i] for i in keep_h]),
                     np.array([y_again[i] for i in keep_h])),
        }
    if len(sets["float"]["train"][0]) < 8 or len(sets["quantized"]["train"][0]) < 4:
        raise CodesignError("too few sub-networks could be evaluated to train the accuracy "
                            "predictor; see logs/worker.log")
    candidates: dict[str, MLP | Boosted] = {"mlp": MLP(seed=settings.seed),
                                             "boosted": Boosted(seed=settings.seed)}
    report: dict[str, Any] = {}
    for name, reg in candidates.items():
        xf, yf = sets["float"]["train"]
        xq, yq = sets["quantized"]["train"]
        reg.fit(encode_many(space, xf), yf)
        float_pred = reg.predict(encode_many(space, sets["float"]["held"][0]))
        reg.transfer(encode_many(space, xq), yq)
        quant_pred = reg.predict(encode_many(space, sets["quantized"]["held"][0]))
        report[name] = {
            "float": fidelity(float_pred, sets["float"]["held"][1], sets["float"]["held"][2],
                              float(np.mean(yf))),
            "quantized": fidelity(quant_pred, sets["quantized"]["held"][1],
                                  sets["quantized"]["held"][2], float(np.mean(yq))),
        }
    chosen = max(report, key=lambda n: (report[n]["quantized"]["predictor"]["kendall_tau"],
                                        -report[n]["quantized"]["predictor"]["rmse"]))
    # the kept regressor learns from every evaluation, held-out ones included
    final = MLP(seed=settings.seed) if chosen == "mlp" else Boosted(seed=settings.seed)
    all_f = sets["float"]["train"][0] + sets["float"]["held"][0]
    all_fy = np.concatenate([sets["float"]["train"][1], sets["float"]["held"][1]])
    all_q = sets["quantized"]["train"][0] + sets["quantized"]["held"][0]
    all_qy = np.concatenate([sets["quantized"]["train"][1], sets["quantized"]["held"][1]])
    final.fit(encode_many(space, all_f), all_fy)
    final.transfer(encode_many(space, all_q), all_qy)
    meta = {"settings": asdict(settings), "chosen": chosen, "fidelity": report,
            "meets_target": meets_target(report[chosen]["quantized"])}
    return AccuracyPredictor(space, final, meta)


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
    return Candidate.make(base.resolution, base.depths, base.prune_map, prec)
