"""A time budget never throws work away: a budget-stopped search still ends with a front."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from codesign.engine.budget import MIN_FRONT, MIN_TRIALS, TimeBudget
from tests.conftest import TINY, run_cli

pytestmark = pytest.mark.e2e


def test_budget_rules() -> None:
    none = TimeBudget(None)
    assert not none.spent() and none.may_start(0, 0) and none.summary(0, 0) is None
    gone = TimeBudget(1.0, started=0.0)  # started long ago: spent
    assert gone.spent()
    assert gone.may_start(MIN_FRONT - 1, MIN_TRIALS - 1)  # the front is too thin: go on
    assert not gone.may_start(MIN_FRONT, 0)
    assert not gone.may_start(0, MIN_TRIALS)
    tuned = TimeBudget(1.0, started=0.0, spare=1)  # the front is fine-tuned after
    assert tuned.may_start(MIN_FRONT, 0) and not tuned.may_start(MIN_FRONT + 1, 0)
    said = gone.summary(MIN_FRONT, 4)
    assert said is not None and "exceeded by" in said and f"front of {MIN_FRONT}" in said


@pytest.mark.slow  # a whole search of a minute and its fine-tuning: make test-slow
def test_one_minute_budget_ends_with_a_front_of_three(seeded_run: Path) -> None:
    tuned = [a for a in TINY if a != "--no-references"]  # as by default: references, ...
    # ... and the front fine-tuned (more points are sought)
    tuned[tuned.index("--finetune-epochs") + 1] = "1"
    proc = run_cli("search", "--data", "digits", *tuned, "--trials", "1000",
                   "--time-budget-min", "1", "--out", str(seeded_run))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert "time budget: 1 min" in proc.stdout
    assert "time budget of 1 min" in proc.stdout  # how it was used, said at the end
    doc = json.loads((seeded_run / "pareto.json").read_text())
    assert len(doc["points"]) >= MIN_FRONT
    assert all(p["latency_ms"]["median"] > 0 for p in doc["points"])  # measured points


def test_budget_spent_in_set_up_still_evaluates_the_seeded_candidates(seeded_run: Path) -> None:
    proc = run_cli("search", "--data", "digits", *TINY, "--trials", "1000",
                   "--time-budget-min", "0.01", "--out", str(seeded_run))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
    assert "exceeded by" in proc.stdout
    study = optuna.load_study(study_name="codesign",
                              storage=f"sqlite:///{seeded_run / 'study.db'}")
    done = study.get_trials(states=(TrialState.COMPLETE,))
    doc = json.loads((seeded_run / "pareto.json").read_text())
    assert len(doc["points"]) >= MIN_FRONT or len(done) == MIN_TRIALS
    assert len(done) <= MIN_TRIALS
    first = sorted(done, key=lambda t: t.number)[:2]
    assert all("anchor" in t.user_attrs for t in first)  # seeded candidates first


def test_set_up_is_sized_to_the_budget() -> None:
    from codesign.engine import estimates
    from codesign.space.family import get_space

    space, shape = get_space("default"), estimates.DataShape(1437, 1, 10)
    free = estimates.auto_epochs(space, shape)
    short = estimates.auto_epochs(space, shape, budget_min=1.0)
    assert estimates.MIN_EPOCHS <= short < free  # a 1-minute budget trains less ...
    per_epoch = estimates.supernet_s(space, shape, 40) / 40
    assert short * per_epoch <= max(estimates.BUDGET_SUPERNET_SHARE * 60.0,  # ... within its share
                                     estimates.MIN_EPOCHS * per_epoch) + per_epoch
    assert estimates.auto_epochs(space, shape, budget_min=600.0) == free
    each = estimates.quality_sample_s(space, shape, 3)
    unbounded = estimates.quality_samples(None, 100, 200.0, each)
    assert unbounded >= estimates.QUALITY_MIN
    assert estimates.quality_samples(None, 100, 200.0, each, budget_min=0.5) == 0
    assert estimates.quality_samples(7, 100, 200.0, each, budget_min=0.5) == 7  # asked wins

    # later stages' estimates follow the supernet's real training time (pace), so the
    # quality report's share of it holds as many sub-networks on a slow machine as a fast one
    expect = estimates.supernet_s(space, shape, 20)
    assert estimates.pace(0.0, space, shape, 20) == 1.0  # unknown: as estimated
    slow = estimates.pace(2.5 * expect, space, shape, 20)
    assert slow == pytest.approx(2.5)
    assert estimates.pace(100 * expect, space, shape, 20) == estimates.PACE_RANGE[1]
    assert estimates.quality_samples(None, 100, 2.5 * expect, slow * each) == \
        estimates.quality_samples(None, 100, expect, each)
