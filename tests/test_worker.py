"""The evaluation child: a crash there kills only the child, which is restarted."""

from __future__ import annotations

import pytest

from codesign.errors import CodesignError, EvaluatorCrashed, TrialFailure
from codesign.space import get_space
from codesign.worker import EvalWorker


def test_segfault_kills_only_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESIGN_TEST_HOOKS", "1")
    with EvalWorker(timeout_s=60) as worker:
        first = worker.call("test_pid")["pid"]
        with pytest.raises(EvaluatorCrashed, match="SIGSEGV"):
            worker.call("test_segfault")
        second = worker.call("test_pid")["pid"]
        assert second != first
        assert worker.restarts == 1


def test_failed_request_keeps_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESIGN_TEST_HOOKS", "1")
    with EvalWorker(timeout_s=60) as worker:
        first = worker.call("test_pid")["pid"]
        with pytest.raises(TrialFailure, match="unknown request"):
            worker.call("no_such_request")
        cand = get_space("tiny").max_candidate().to_dict()
        with pytest.raises(TrialFailure, match="not set up"):
            worker.call("evaluate", candidate=cand, model_path="/tmp/x.tflite")
        with pytest.raises(CodesignError, match="malformed candidate"):
            worker.call("evaluate", candidate={}, model_path="/tmp/x.tflite")
        assert worker.call("test_pid")["pid"] == first
        assert worker.restarts == 0


def test_hooks_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODESIGN_TEST_HOOKS", raising=False)
    with EvalWorker(timeout_s=60) as worker, pytest.raises(TrialFailure, match="needs"):
        worker.call("test_segfault")
