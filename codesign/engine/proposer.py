"""Queues the predictor-driven proposals into the real study, once or in rounds.

In hybrid accuracy mode the predictor goes on learning from each finished
round (APQ's transfer). What it has learnt is saved in the run directory
(:data:`TRANSFER_FILE`, with the trial numbers it learnt from), so a resumed
run continues from it and learns the trials that finished since.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState

from codesign.config import SearchConfig
from codesign.engine.screen import Screen
from codesign.engine.surrogate import peel, propose
from codesign.errors import CodesignError
from codesign.predict.predictor import AccuracyPredictor
from codesign.space.candidate import Candidate
from codesign.space.suggest import FamilySpace, params_of

ROUNDS = 4  # a search proposes in about this many rounds ...
ROUND_MAX = 25  # ... of at most this many candidates
TRANSFER_FILE = "predictor_transfer.json"  # the predictor as hybrid mode has updated it
LEARN_MIN = 4  # finished trials the predictor learns from at once
SHORTLIST = 3  # with screening: candidates screened per place in a round

#: Screened accuracy of candidates (None where one failed); see ``--predictor-screen-samples``.
ScreenAccuracy = Callable[[list[Candidate]], list[float | None]]


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
        run_root: The run directory (None: what hybrid mode learns is not saved).
        screened: Scores candidates through the screen (the masked supernet with
            rounded weights). Given, each round shortlists :data:`SHORTLIST`
            candidates per place off the predicted front, screens them, and
            queues those on the front of screened accuracy and predicted latency.
    """

    def __init__(self, predictor: AccuracyPredictor, screen: Screen, cfg: SearchConfig,
                 study: optuna.Study, out: TextIO, run_root: Path | None = None,
                 screened: ScreenAccuracy | None = None) -> None:
        self.predictor = predictor
        self.screened = screened
        self.screen = screen
        self.cfg = cfg
        self.study = study
        self.out = out
        self.rounds = len({t.user_attrs.get("proposal_round") for t in study.get_trials(
            deepcopy=False) if "proposal_round" in t.user_attrs})
        self.fresh: list[tuple[int, Candidate, float]] = []
        self.learned: set[int] = set()
        self.exhausted = False
        self.path = None if run_root is None else run_root / TRANSFER_FILE
        if cfg.accuracy == "hybrid":
            self._resume()

    def _resume(self) -> None:
        """Continue from the saved transfer, and queue the trials finished but not yet learnt."""
        if self.path is not None and self.path.is_file():
            try:
                saved = AccuracyPredictor.load(self.path, self.cfg.space_spec)
            except CodesignError as exc:
                print(f"accuracy predictor: {exc}; starting again from the trained one",
                      file=self.out)
                saved = None
            if saved is not None and (saved.meta.get("settings")
                                      == self.predictor.meta.get("settings")):
                self.predictor = saved
                self.learned = {int(n) for n in saved.meta.get("learned_trials", [])}
                print(f"accuracy predictor: continuing from what it learnt of "
                      f"{len(self.learned)} finished trials ({TRANSFER_FILE})", file=self.out)
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            attrs = t.user_attrs
            if t.number not in self.learned and "candidate" in attrs and "val_accuracy" in attrs:
                self.fresh.append((t.number, Candidate.from_dict(attrs["candidate"]),
                                   float(attrs["val_accuracy"])))

    def refill(self, remaining: int) -> None:
        """Queue the next proposal when nothing is waiting."""
        if self.exhausted or remaining <= 0:
            return
        if self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            return
        size = max(2, min(ROUND_MAX, -(-self.cfg.trials // ROUNDS)))
        seen = {Candidate.from_dict(t.user_attrs["candidate"]).to_json()
                for t in self.study.get_trials(deepcopy=False) if "candidate" in t.user_attrs}
        n_pick = min(size, remaining)
        prop = propose(self.predictor, self.screen,
                       FamilySpace(self.cfg.space_spec, self.cfg.layer_choices()),
                       n_pick * (SHORTLIST if self.screened else 1), self.cfg.inner_trials,
                       self.cfg.seed + 31 * self.rounds,
                       self.cfg.budgets().get("max_latency_ms"), seen)
        picks = [(c, acc, lat, {}) for c, (acc, lat) in zip(prop.candidates, prop.predicted,
                                                             strict=True)]
        how = "off the predicted front"
        if self.screened is not None and prop.candidates:
            picks = self._screen(picks, n_pick)
            how = (f"of {len(prop.candidates)} screened off the predicted front, on the front "
                   "of screened accuracy and predicted latency")
        for cand, acc, lat, extra in picks:
            self.study.enqueue_trial(params_of(cand), user_attrs={
                "proposal_round": self.rounds, "proposed_accuracy": acc,
                "proposed_latency_ms": lat, **extra})
        print(f"\npredictor round {self.rounds}: {prop.inner_trials} inner trials in "
              f"{prop.seconds:.1f} s ({prop.inner_trials / max(prop.seconds, 1e-9) * 60:,.0f} "
              f"per minute); {len(picks)} candidates {how} queued",
              file=self.out, flush=True)
        self.rounds += 1
        if not prop.candidates:
            self.exhausted = True

    def _screen(self, short: list[tuple[Candidate, float, float, dict[str, float]]],
                n_pick: int) -> list[tuple[Candidate, float, float, dict[str, float]]]:
        """The shortlist's best ``n_pick`` by screened accuracy and predicted latency."""
        assert self.screened is not None
        scores = self.screened([c for c, _, _, _ in short])
        pool = [(c, s, lat) for (c, _, lat, _), s in zip(short, scores, strict=True)
                if s is not None]
        predicted = {c.to_json(): acc for c, acc, _, _ in short}
        return [(c, predicted[c.to_json()], lat, {"screened_accuracy": s})
                for c, s, lat in peel(pool, n_pick)]

    def learn(self, trial: Any) -> None:
        """Remember a finished trial; in hybrid mode, learn from a round once it is done."""
        if self.cfg.accuracy != "hybrid" or "candidate" not in trial.user_attrs:
            return
        self.fresh.append((trial.number, Candidate.from_dict(trial.user_attrs["candidate"]),
                           float(trial.user_attrs["val_accuracy"])))
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting and len(self.fresh) >= LEARN_MIN:
            numbers, cands, accs = zip(*self.fresh, strict=True)
            self.predictor.update(list(cands), list(accs))
            self.learned.update(numbers)
            self.fresh = []
            if self.path is not None:
                self.predictor.meta = {**self.predictor.meta,
                                       "learned_trials": sorted(self.learned)}
                self.predictor.save(self.path)
