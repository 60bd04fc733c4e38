"""Many workers on one study: exact counts on a real PostgreSQL, locks, storage rules."""

from __future__ import annotations

import errno
import json
import multiprocessing as mp
import os
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from codesign.config import SearchConfig
from codesign.engine.shared_study import counts, owner_alive, worker_identity
from codesign.engine.workers import choose_storage
from codesign.errors import CodesignError
from codesign.run.directory import RunDir
from codesign.run.retry import retrying
from codesign.run.storage import Locator, parse_locator
from codesign.run.study import load_study
from codesign.run.urls import mask_url, without_password
from tests.conftest import CODESIGN, ROOT, run_cli

TINY_FAST = ["--space", "tiny", "--epochs", "4", "--seed", "0", "--quality-samples", "0",
             "--finetune-epochs", "0", "--latency", "measured", "--no-report"]


# --- fast: no TensorFlow, no server --------------------------------------------------------


def test_passwords_are_masked_and_never_recorded() -> None:
    url = "postgresql://me:s3cr%40t@db.example:5432/runs"
    assert mask_url(url) == "postgresql://me:***@db.example:5432/runs"
    assert mask_url(f"error at {url}; again {url}").count("***") == 2
    assert mask_url("postgresql://me@db/runs") == "postgresql://me@db/runs"
    assert without_password(url) == "postgresql://me@db.example:5432/runs"


def test_locators_round_trip() -> None:
    for loc in (Locator("sqlite", "sqlite:////r/study.db"),
                Locator("journal", "/r/study.journal"),
                Locator("server", "postgresql://u:p@h:5/db", "my-study")):
        assert parse_locator(loc.text()) == loc
    assert parse_locator("sqlite:////x/study.db").study == "codesign"


def _cfg(out: Path, **kw: object) -> SearchConfig:
    return SearchConfig(out=out, space="tiny", **kw)  # type: ignore[arg-type]


def test_storage_follows_the_worker_count_and_stays_with_the_run(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "one")
    assert choose_storage(run, _cfg(run.root)).kind == "sqlite"
    run = RunDir(tmp_path / "many")
    assert choose_storage(run, _cfg(run.root, workers=3)).kind == "journal"
    run.root.mkdir()
    run.journal_file.write_text("")
    assert choose_storage(run, _cfg(run.root)).kind == "journal"  # resumed with one worker
    with pytest.raises(CodesignError, match="rerun without --storage"):
        choose_storage(run, _cfg(run.root, storage="postgresql://u:pw@h/db"))
    run = RunDir(tmp_path / "sqlite")
    run.root.mkdir()
    run.sqlite_file.write_text("")
    with pytest.raises(CodesignError, match="one-worker SQLite study"):
        choose_storage(run, _cfg(run.root, workers=2))
    run = RunDir(tmp_path / "server")
    loc = choose_storage(run, _cfg(run.root, storage="postgresql://u:pw@h/db", study="s1"))
    assert loc.kind == "server" and loc.study == "s1"
    assert "pw" not in run.storage_file.read_text()
    with pytest.raises(CodesignError, match="give the same --storage"):
        choose_storage(run, _cfg(run.root, storage="postgresql://u:pw@h/other", study="s1"))


def test_a_joining_worker_keeps_to_the_runs_own_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from codesign.engine.workers import join_locator

    monkeypatch.setenv("CODESIGN_STORAGE", "postgresql://u:pw@h/db")
    run = RunDir(tmp_path / "journal")
    run.root.mkdir()
    run.journal_file.write_text("")
    assert join_locator(run, None, "codesign").kind == "journal"  # the environment is ignored
    with pytest.raises(CodesignError, match="join without --storage"):
        join_locator(run, "postgresql://u:pw@h/db", "codesign")
    run = RunDir(tmp_path / "server")
    run.record_server("postgresql://u:pw@h/db", "s1")
    loc = join_locator(run, None, "codesign")
    assert (loc.kind, loc.url, loc.study) == ("server", "postgresql://u:pw@h/db", "s1")
    monkeypatch.delenv("CODESIGN_STORAGE")
    assert join_locator(run, None, "s1").url == "postgresql://u@h/db"  # PGPASSWORD's turn
    with pytest.raises(CodesignError, match="no study to join"):
        join_locator(RunDir(tmp_path / "empty"), None, "codesign")


def test_bad_worker_settings_are_one_line_errors(tmp_path: Path) -> None:
    for args, words in ((["--workers", "0"], "--workers"),
                        (["--storage", "sqlite:///x.db"], "database server URL"),
                        (["--storage", "postgresql://u:hunter2@h/db", "--study", "a b"],
                         "--study")):
        proc = run_cli("search", "--space", "tiny", "--out", str(tmp_path / "r"), *args,
                       timeout=120)
        assert proc.returncode == 2 and words in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and "hunter2" not in proc.stderr
    proc = run_cli("worker", "--out", str(tmp_path / "none"), timeout=120)
    assert proc.returncode == 2 and "codesign search" in proc.stderr


def test_owner_liveness_sees_dead_and_reused_pids() -> None:
    me = worker_identity()
    assert owner_alive(me) is True
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert owner_alive({**me, "pid": proc.pid}) is False
    assert owner_alive({**me, "start": (me["start"] or 0) + 1}) is False  # a reused pid
    assert owner_alive({**me, "host": "elsewhere"}) is None


def _hold_exclusive(lock_dir: str, held: mp.Event, release: mp.Event) -> None:
    os.environ["CODESIGN_LOCK_DIR"] = lock_dir
    from codesign.hardware.devicelock import HOST, device_lock

    with device_lock(HOST, exclusive=True):
        held.set()
        release.wait(10)


def test_device_lock_holds_across_processes(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESIGN_LOCK_DIR", str(tmp_path))
    from codesign.hardware.devicelock import host_work

    ctx = mp.get_context("spawn")
    held, release = ctx.Event(), ctx.Event()
    timer = ctx.Process(target=_hold_exclusive, args=(str(tmp_path), held, release))
    timer.start()
    try:
        assert held.wait(30)
        threading.Timer(0.5, release.set).start()
        t0 = time.monotonic()
        with host_work():  # accuracy work waits while another process times
            waited = time.monotonic() - t0
        assert waited >= 0.4
    finally:
        release.set()
        timer.join(10)


def test_database_outages_are_retried_then_reported() -> None:
    import sqlalchemy.exc as sa

    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise sa.OperationalError("select 1", {}, Exception("connection refused"))
        return "ok"

    notes: list[str] = []
    assert retrying(flaky, "db", sleep=lambda s: None, note=notes.append) == "ok"
    assert calls["n"] == 3 and len(notes) == 1 and "retrying" in notes[0]

    def refused() -> None:
        raise sa.OperationalError("x", {}, Exception("password authentication failed for u"))

    with pytest.raises(CodesignError, match="refused the connection"):
        retrying(refused, "db", sleep=lambda s: None)
    with pytest.raises(ValueError):
        retrying(lambda: (_ for _ in ()).throw(ValueError("bad data")), "db")


def test_disk_full_front_is_a_clear_error() -> None:
    """Injected OSError(ENOSPC): the message the search prints when the front cannot be written."""
    from codesign.engine.front import _write_error

    run = RunDir(Path("/r"))
    exc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/r/pareto.json")
    msg = str(_write_error(exc, run, Locator("journal", "/r/study.journal")))
    assert "no space left" in msg and "/r/pareto.json" in msg and "rerun the same command" in msg


# --- PostgreSQL: several workers finish one study ----------------------------------------


def _wait_for(cond: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.slow  # three processes on two cores, a supernet of their own: make test-slow
def test_workers_on_postgres_finish_exactly_the_trials_asked(postgres: object,
                                                            tmp_path: Path) -> None:
    url = postgres.url  # type: ignore[attr-defined]
    password = url.split(":")[2].split("@")[0]
    run = tmp_path / "run"
    trials = 12
    env = {**os.environ, "CODESIGN_STORAGE": url}
    search = subprocess.Popen(
        [*CODESIGN, "search", *TINY_FAST, "--trials", str(trials), "--workers", "2",
         "--storage", url, "--study", "two-plus-one", "--out", str(run)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: (run / "storage.json").is_file(), 120)
    # a third worker joins by hand, as on another machine (the URL in its environment)
    joined = subprocess.run([*CODESIGN, "worker", "--out", str(run), "--study", "two-plus-one"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out, err = search.communicate(timeout=600)
    assert search.returncode == 0, err[-3000:]
    assert joined.returncode == 0, joined.stderr[-3000:]

    study = load_study(f"{url}#two-plus-one")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == trials and counts(study).running == 0
    assert len({t.number for t in complete}) == trials
    params = {json.dumps(t.params, sort_keys=True) for t in complete}
    assert len(params) == trials, "a candidate ran twice"
    owners = {t.user_attrs["worker"]["pid"] for t in complete}
    assert len(owners) >= 2, "the work was not shared"
    assert not study.get_trials(states=(TrialState.FAIL,))

    logs = "".join(p.read_text(errors="replace") for p in (run / "logs").glob("*.log"))
    texts = [out, err, joined.stdout, joined.stderr, logs]
    texts += [p.read_text(errors="replace") for p in run.glob("*.json")]
    assert not any(password in t for t in texts), "a password leaked"
    assert "postgresql://codesign:***@" in joined.stdout
    # one worker trained the supernet; the other two waited and loaded it
    assert (out + joined.stdout + logs).count("supernet: reused") == 2

    front = json.loads((run / "pareto.json").read_text())["points"]
    exported = run_cli("export", str(run), "--trial", str(front[0]["trial"]), "--out",
                       str(tmp_path / "m.tflite"), env={"CODESIGN_STORAGE": url})
    assert exported.returncode == 0, exported.stderr
    again = run_cli("search", *TINY_FAST, "--trials", str(trials), "--storage", url, "--study",
                    "two-plus-one", "--out", str(run), env={"CODESIGN_STORAGE": url})
    assert again.returncode == 0, again.stderr[-2000:]
    assert len(load_study(f"{url}#two-plus-one").get_trials(
        states=(TrialState.COMPLETE,))) == trials  # a finished study runs nothing more


@pytest.mark.slow  # a whole run of several processes, killed or cut off: make test-slow
def test_local_workers_share_a_journal_and_resume(tmp_path: Path) -> None:
    """No server: --workers 2 keeps the study in RUN/study.journal; one worker resumes it."""
    run = tmp_path / "run"
    proc = run_cli("search", *TINY_FAST, "--trials", "6", "--workers", "2", "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (run / "study.journal").is_file() and not (run / "study.db").exists()
    assert "workers: this process and 1 more" in proc.stdout
    more = run_cli("search", *TINY_FAST, "--trials", "8", "--out", str(run))
    assert more.returncode == 0, more.stderr[-3000:]
    study = load_study(RunDir(run).storage_url)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 8 and len({t.number for t in complete}) == 8
    assert len({t.user_attrs["worker"]["pid"] for t in complete}) >= 2
    assert not (run / "lock").exists()


def test_optuna_version_has_what_workers_use() -> None:
    assert hasattr(optuna.storages, "JournalStorage")
    assert "heartbeat_interval" in optuna.storages.RDBStorage.__init__.__code__.co_varnames


def test_every_call_of_optunas_cache_on_the_database_is_retried() -> None:
    import inspect
    import re

    from optuna.storages import _cached_storage

    from codesign.run.retry import RetryingRDBStorage

    called = set(re.findall(r"_backend\.(\w+)", inspect.getsource(_cached_storage)))
    plain = optuna.storages.RDBStorage
    missed = {m for m in called
              if getattr(RetryingRDBStorage, m, None) is getattr(plain, m, None)}
    assert not missed, f"not retried: {sorted(missed)}"


def test_a_candidate_already_run_or_running_is_not_evaluated_again() -> None:
    """Two samplers (or workers) proposing the same candidate: the later trial gives way."""
    import numpy as np

    from codesign.engine.trials import duplicate_of
    from codesign.space import get_space
    from codesign.space.candidate import PRECISIONS
    from codesign.space.suggest import FamilySpace, params_of

    space = get_space("tiny")
    choices = {n: PRECISIONS[:3] for n in space.layer_names()}
    family = FamilySpace(space, choices)
    rng = np.random.default_rng(0)
    first, other = (space.random_candidate(rng, choices) for _ in range(2))
    study = optuna.create_study(directions=["maximize", "minimize"])
    for cand in (first, first, other):
        study.enqueue_trial(params_of(cand))

    def asked() -> optuna.Trial:
        trial = study.ask()
        family.suggest(trial)
        return trial

    running = asked()  # still running when the next one is asked
    assert duplicate_of(study, running) is None
    again = asked()
    assert duplicate_of(study, again) == running.number
    study.tell(again, state=TrialState.PRUNED)
    study.tell(running, [0.9, 1.0])
    fresh = asked()
    assert duplicate_of(study, fresh) is None
