"""Predictor-driven proposals: an in-memory Optuna study on predicted accuracy and latency.

Each inner trial costs a prediction, not an evaluation, so the inner study
looks at thousands of candidates per minute. Its predicted front, spread along
latency, becomes the next candidates the real study evaluates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import optuna

from codesign.engine.screen import Screen
from codesign.predict.predictor import AccuracyPredictor
from codesign.report.pareto import pareto_indices
from codesign.space.candidate import Candidate
from codesign.space.suggest import FamilySpace, candidate_from_params


@dataclass(frozen=True)
class Proposal:
    """Candidates to evaluate for real, and what the inner study saw.

    Attributes:
        candidates: The picks, fastest first.
        predicted: Their (accuracy, latency ms) predictions.
        inner_trials: Inner trials run.
        seconds: Wall time of the inner study.
    """

    candidates: list[Candidate]
    predicted: list[tuple[float, float]]
    inner_trials: int
    seconds: float


def propose(predictor: AccuracyPredictor, screen: Screen, family: FamilySpace, n_pick: int,
            n_inner: int, seed: int, max_latency_ms: float | None = None,
            exclude: set[str] | None = None) -> Proposal:
    """Run an inner NSGA-II study on predictions and pick ``n_pick`` candidates off its front.

    Args:
        predictor: Accuracy predictor.
        screen: Latency predictor.
        family: The built-in space with the precisions offered per layer.
        n_pick: Candidates to return.
        n_inner: Inner trials.
        seed: Sampler seed.
        max_latency_ms: Latency budget (predicted) the picks must meet.
        exclude: JSON of candidates already evaluated (not proposed again).
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(seed=seed, population_size=100)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    t0 = time.perf_counter()

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        cand = family.suggest(trial)
        return predictor.predict(cand), screen.predict(cand)

    study.optimize(objective, n_trials=n_inner)
    seconds = time.perf_counter() - t0
    seen = set(exclude or ())
    pool: list[tuple[Candidate, float, float]] = []
    for t in study.trials:
        if t.values is None:
            continue
        acc, lat = t.values
        if max_latency_ms is not None and lat > max_latency_ms:
            continue
        cand = candidate_from_params(t.params, family.spec)
        key = cand.to_json()
        if key in seen:
            continue
        seen.add(key)
        pool.append((cand, acc, lat))
    picks = peel(pool, n_pick)
    return Proposal([p[0] for p in picks], [(p[1], p[2]) for p in picks], len(study.trials),
                    seconds)


def peel(pool: list[tuple[Candidate, float, float]], n_pick: int
         ) -> list[tuple[Candidate, float, float]]:
    """Up to ``n_pick`` of ``(candidate, accuracy, latency)``, front by front, fastest first.

    The first front (higher accuracy, lower latency) comes first; a front with
    more members than places left gives members spread along its latency.
    """
    picks: list[tuple[Candidate, float, float]] = []
    while pool and len(picks) < n_pick:
        front = pareto_indices([(a, lat) for _, a, lat in pool], ["maximize", "minimize"])
        layer = sorted((pool[i] for i in front), key=lambda p: p[2])
        need = n_pick - len(picks)
        if len(layer) > need:  # spread along latency
            idx = np.unique(np.round(np.linspace(0, len(layer) - 1, need)).astype(int))
            layer = [layer[i] for i in idx]
        picks += layer
        chosen = set(front)
        pool = [p for i, p in enumerate(pool) if i not in chosen]
    picks.sort(key=lambda p: p[2])
    return picks
