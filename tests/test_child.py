"""The evaluation child: a crash there kills only the child, which is restarted."""

from __future__ import annotations

import pytest

from codesign.child import EvalChild
from codesign.errors import CodesignError, EvaluatorCrashed, TrialFailure
from codesign.space import get_space
from tests.conftest import hooks_env


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Children started by this test get the tests' hooks (tests/child_hooks)."""
    for key, value in hooks_env().items():
        monkeypatch.setenv(key, value)


def test_segfault_kills_only_the_child(hooks: None) -> None:
    with EvalChild(timeout_s=60) as child:
        first = child.call("test_pid")["pid"]
        with pytest.raises(EvaluatorCrashed, match="SIGSEGV"):
            child.call("test_segfault")
        second = child.call("test_pid")["pid"]
        assert second != first
        assert child.restarts == 1


def test_failed_request_keeps_the_child(hooks: None) -> None:
    with EvalChild(timeout_s=60) as child:
        first = child.call("test_pid")["pid"]
        with pytest.raises(TrialFailure, match="unknown request"):
            child.call("no_such_request")
        cand = get_space("tiny").max_candidate().to_dict()
        with pytest.raises(TrialFailure, match="not set up"):
            child.call("evaluate", candidate=cand, model_path="/tmp/x.tflite")
        with pytest.raises(CodesignError, match="malformed candidate"):
            child.call("evaluate", candidate={}, model_path="/tmp/x.tflite")
        assert child.call("test_pid")["pid"] == first
        assert child.restarts == 0


def test_hooks_are_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODESIGN_TEST_HOOKS", raising=False)
    with EvalChild(timeout_s=60) as child, pytest.raises(TrialFailure, match="unknown request"):
        child.call("test_segfault")
