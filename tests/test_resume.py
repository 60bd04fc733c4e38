"""Killed runs resume; reruns with other settings are refused."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import CODESIGN, ROOT, TINY, hooks_env, run_cli

pytestmark = pytest.mark.e2e


def _complete(run: Path) -> int:
    db = run / "study.db"
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("select count(*) from trials where state='COMPLETE'").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # a whole run of several processes, killed or cut off: make test-slow
def test_sigkill_mid_run_then_rerun_ends_with_exact_count(seeded_run: Path) -> None:
    args = ["search", *TINY, "--trials", "10", "--out", str(seeded_run)]
    proc = subprocess.Popen([*CODESIGN, *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while _complete(seeded_run) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = _complete(seeded_run)
    assert 3 <= killed_at < 10
    assert json.loads((seeded_run / "lock").read_text())["pid"] == proc.pid

    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    study = optuna.load_study(study_name="codesign",
                              storage=f"sqlite:///{seeded_run / 'study.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 10
    assert not study.get_trials(states=(TrialState.RUNNING,))
    for t in study.get_trials(states=(TrialState.FAIL,)):
        assert t.user_attrs["fail_reason"] == "interrupted"
    assert not (seeded_run / "lock").exists()
    assert (seeded_run / "pareto.json").is_file()


def test_rerun_with_other_settings_is_refused(seeded_run: Path) -> None:
    base = ["search", *TINY, "--trials", "3", "--out", str(seeded_run)]
    first = run_cli(*base)
    assert first.returncode == 0, first.stderr
    before = (seeded_run / "study.db").read_bytes()

    refusals = [  # each refused before any work, so they may run side by side
        ("different seed", ["search", "--space", "tiny", "--epochs", "10", "--seed", "1",
                            "--trials", "3", "--out", str(seeded_run)]),
        ("different space", ["search", "--space", "default", "--epochs", "10", "--trials", "3",
                             "--out", str(seeded_run)]),
        ("can only grow", [*base[:-4], "--trials", "2", "--out", str(seeded_run)]),
    ]
    with ThreadPoolExecutor(len(refusals)) as pool:
        procs = list(pool.map(lambda case: run_cli(*case[1]), refusals))
    for (words, _), proc in zip(refusals, procs, strict=True):
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr
    assert (seeded_run / "study.db").read_bytes() == before

    more = run_cli(*base[:-4], "--trials", "5", "--out", str(seeded_run))
    assert more.returncode == 0, more.stderr
    study = optuna.load_study(study_name="codesign",
                              storage=f"sqlite:///{seeded_run / 'study.db'}")
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5


def test_live_owner_blocks_a_second_search(seeded_run: Path) -> None:
    (seeded_run / "lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename}))
    proc = run_cli("search", *TINY, "--trials", "2", "--out", str(seeded_run))
    assert proc.returncode == 2 and f"in use by process {os.getpid()}" in proc.stderr


def test_a_candidate_that_segfaults_fails_only_its_trial(seeded_run: Path) -> None:
    env = hooks_env(CODESIGN_TEST_CRASH_MODEL="/trial-1.tflite")
    proc = run_cli("search", *TINY, "--trials", "4", "--out", str(seeded_run), env=env)
    assert proc.returncode == 0, proc.stderr
    study = optuna.load_study(study_name="codesign",
                              storage=f"sqlite:///{seeded_run / 'study.db'}")
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert [t.number for t in failed] == [1]
    assert "SIGSEGV" in failed[0].user_attrs["fail_reason"]
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4


def test_budgets_constrain_the_front_and_an_impossible_one_is_reported(
    seeded_run: Path, tmp_path: Path
) -> None:
    other = tmp_path / "impossible"
    other.mkdir()
    for name in ("supernet.npz", "supernet.json"):
        (other / name).write_bytes((seeded_run / name).read_bytes())
    runs = [  # two runs of their own: side by side
        ["search", *TINY, "--trials", "4", "--max-size-kb", "30",
         "--objectives", "accuracy,latency,size", "--out", str(seeded_run)],
        ["search", *TINY, "--trials", "3", "--min-accuracy", "0.9999", "--out", str(other)],
    ]
    with ThreadPoolExecutor(2) as pool:
        proc, impossible = pool.map(lambda args: run_cli(*args), runs)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((seeded_run / "pareto.json").read_text())
    assert doc["points"] and all(p["size_bytes"] <= 30 * 1024 for p in doc["points"])
    study = optuna.load_study(study_name="codesign",
                              storage=f"sqlite:///{seeded_run / 'study.db'}")
    assert len(study.directions) == 3
    assert all("size" in t.constraints for t in study.get_trials(states=(TrialState.COMPLETE,)))

    proc = impossible
    assert proc.returncode == 2
    assert "no trial of 3 meets the budgets" in proc.stdout
    assert "over budget by accuracy" in proc.stdout
    assert "no trial meets the budgets" in proc.stderr and "Traceback" not in proc.stderr
    assert (other / "study.db").is_file()  # nothing measured is lost


@pytest.mark.e2e
def test_a_single_trial_is_enough(seeded_run: Path) -> None:
    """Queued first-generation candidates are not counted as failed attempts."""
    proc = run_cli("search", *TINY, "--trials", "1", "--out", str(seeded_run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "of 1 trials (0 failed)" in proc.stdout
    # --no-references (in TINY): no maximal network measured, no noise floor on it
    assert "references: none measured (--no-references)" in proc.stdout
    assert json.loads((seeded_run / "pareto.json").read_text())["references"] == []
    assert not (seeded_run / "noise_floor.json").exists()
