"""Queues the predictor-driven proposals into the real study, once or in rounds."""

from __future__ import annotations

from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from codesign.config import SearchConfig
from codesign.engine.screen import Screen
from codesign.engine.surrogate import propose
from codesign.predict.predictor import AccuracyPredictor
from codesign.space.candidate import Candidate
from codesign.space.suggest import FamilySpace, params_of

ROUNDS = 4  # a search proposes in about this many rounds ...
ROUND_MAX = 25  # ... of at most this many candidates


class Proposer:
    """Fills the study's queue with candidates off the predicted front.

    Proposals come in rounds (a quarter of the trials, at most 25 each) whenever
    nothing is waiting. ``hybrid`` lets the predictor learn from each round's
    real (quantized, measured) accuracies before proposing the next;
    ``predicted`` keeps the predictor as trained.

    Args:
        predictor: The accuracy predictor.
        screen: The latency predictor.
        cfg: Search settings.
        study: The real study.
        out: Where each proposal is reported.
    """

    def __init__(self, predictor: AccuracyPredictor, screen: Screen, cfg: SearchConfig,
                 study: optuna.Study, out: TextIO) -> None:
        self.predictor = predictor
        self.screen = screen
        self.cfg = cfg
        self.study = study
        self.out = out
        self.rounds = len({t.user_attrs.get("proposal_round") for t in study.get_trials(
            deepcopy=False) if "proposal_round" in t.user_attrs})
        self.fresh: list[tuple[Candidate, float]] = []
        self.exhausted = False

    def refill(self, remaining: int) -> None:
        """Queue the next proposal when nothing is waiting."""
        if self.exhausted or remaining <= 0:
            return
        if self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return
        size = max(2, min(ROUND_MAX, -(-self.cfg.trials // ROUNDS)))
        seen = {Candidate.from_dict(t.user_attrs["candidate"]).to_json()
                for t in self.study.get_trials(deepcopy=False) if "candidate" in t.user_attrs}
        prop = propose(self.predictor, self.screen,
                       FamilySpace(self.cfg.space_spec, self.cfg.layer_choices()),
                       min(size, remaining), self.cfg.inner_trials,
                       self.cfg.seed + 31 * self.rounds,
                       self.cfg.budgets().get("max_latency_ms"), seen)
        for cand, (acc, lat) in zip(prop.candidates, prop.predicted, strict=True):
            self.study.enqueue_trial(params_of(cand), user_attrs={
                "proposal_round": self.rounds, "proposed_accuracy": acc,
                "proposed_latency_ms": lat})
        print(f"\npredictor round {self.rounds}: {prop.inner_trials} inner trials in "
              f"{prop.seconds:.1f} s ({prop.inner_trials / max(prop.seconds, 1e-9) * 60:,.0f} "
              f"per minute); {len(prop.candidates)} candidates off the predicted front queued",
              file=self.out, flush=True)
        self.rounds += 1
        if not prop.candidates:
            self.exhausted = True

    def learn(self, trial: Any) -> None:
        """Remember a finished trial; in hybrid mode, learn from a round once it is done."""
        if self.cfg.accuracy != "hybrid" or "candidate" not in trial.user_attrs:
            return
        self.fresh.append((Candidate.from_dict(trial.user_attrs["candidate"]),
                           float(trial.user_attrs["val_accuracy"])))
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting and len(self.fresh) >= 4:
            cands, accs = zip(*self.fresh, strict=True)
            self.predictor.update(list(cands), list(accs))
            self.fresh = []
