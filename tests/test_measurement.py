"""The Measurement record: a measured candidate and a failed one, in trial user attributes."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState, create_trial

from codesign.engine.shared_study import counts
from codesign.run.measurement import MAX_REASON, Measurement, fail_reason


def _measured() -> Measurement:
    return Measurement(val_accuracy=0.9, test_accuracy=0.8, latency_ms={"median": 2.0},
                       size_bytes=2048, size_gzip_bytes=1024, layers=[], io={}, params=10)


def test_a_measured_candidate_round_trips_and_has_no_fail_reason() -> None:
    m = _measured()
    attrs = m.to_attrs()
    assert "fail_reason" not in attrs and not m.failed
    assert Measurement.from_attrs({**attrs, "candidate": {}}) == m
    assert fail_reason(attrs) is None


def test_a_failure_is_a_measurement_with_its_reason_only() -> None:
    m = Measurement.failure("conversion failed: " + "x" * 5000)
    attrs = m.to_attrs()
    assert list(attrs) == ["fail_reason"] and len(attrs["fail_reason"]) == MAX_REASON
    assert m.failed and Measurement.from_attrs(attrs) == m
    study = optuna.create_study()
    trial = study.ask()
    Measurement.failure("boom").record(trial)
    study.tell(trial, state=TrialState.FAIL)
    assert study.trials[0].user_attrs == {"fail_reason": "boom"}


def test_fail_reasons_of_a_run_made_before_read_the_same() -> None:
    # runs before the Measurement carried the reason wrote the bare attribute
    study = optuna.create_study()
    study.add_trial(create_trial(state=TrialState.FAIL,
                                 user_attrs={"fail_reason": "interrupted", "candidate": {}}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"fail_reason": "boom"}))
    study.add_trial(create_trial(state=TrialState.FAIL))
    assert [fail_reason(t.user_attrs) for t in study.trials] == ["interrupted", "boom", None]
    assert counts(study).failed == 2  # an interruption is not the candidate's failure
