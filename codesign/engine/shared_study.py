"""Several workers on one study: who runs what, exactly the trials asked, lost workers.

Every trial records the worker that asked for it (``user_attrs["worker"]``:
host, pid and the process's start time). Workers take the *ask lock* to
count the study's COMPLETE and RUNNING trials and to ask for a trial, so two
workers never both start the last one: a worker asks only while COMPLETE +
RUNNING is below the trials wanted, otherwise it waits for the running ones
to end (one may fail and need a successor). The ask lock is a PostgreSQL
advisory lock for a server study and an ``flock`` in the run directory
otherwise.

A worker that dies leaves its trial RUNNING. On its own machine that is seen
at once (the pid is gone); on other machines through Optuna's heartbeat of a
server study (no heartbeat for ``GRACE_S``). Either way one worker, holding
the recovery lock, fails the trial as ``interrupted`` and queues its
parameters again (``retry_of``), so the study still ends with the count asked.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from codesign.run.directory import RunDir
from codesign.run.measurement import Measurement, fail_reason
from codesign.run.retry import retrying
from codesign.run.storage import GRACE_S, HEARTBEAT_S, Locator, engine_url

INTERRUPTED = "interrupted"
INFRASTRUCTURE = (INTERRUPTED, "device unavailable", "worker lost")
ORPHAN_S = 120.0  # a RUNNING trial nobody claimed for this long was left by a dead asker
POLL_S = 1.0


def _start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), to tell a reused pid apart."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def worker_identity() -> dict[str, Any]:
    """This process as a trial's owner."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_ticks(os.getpid())}


def owner_alive(owner: Any) -> bool | None:
    """Whether a trial's owner process lives (None: it runs on another machine)."""
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return None
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    start = _start_ticks(pid)
    if start is None:
        return False
    if owner.get("start") is not None and start != owner["start"]:
        return False  # the pid was reused by a newer process
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@dataclass
class Counts:
    """Trials of the study by what they mean for the count.

    Attributes:
        complete: COMPLETE trials.
        running: RUNNING trials (being evaluated somewhere).
        failed: FAIL trials the candidate is to blame for (not interruptions).
        waiting: WAITING (queued) trials.
    """

    complete: int
    running: int
    failed: int
    waiting: int


def counts(study: optuna.Study) -> Counts:
    """Count the study's trials (see :class:`Counts`)."""
    c = Counts(0, 0, 0, 0)
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.COMPLETE:
            c.complete += 1
        elif t.state == TrialState.RUNNING:
            c.running += 1
        elif t.state == TrialState.WAITING:
            c.waiting += 1
        elif t.state == TrialState.FAIL and not (
                fail_reason(t.user_attrs) or "").startswith(INFRASTRUCTURE):
            c.failed += 1
    return c


class Coordinator:
    """Locks and bookkeeping of one worker on a study (see the module docstring).

    Args:
        run: The run directory (shared by all workers).
        loc: Where the study lives.
        out: Where waiting is reported.
    """

    def __init__(self, run: RunDir, loc: Locator, out: TextIO) -> None:
        self.run = run
        self.loc = loc
        self.out = out
        self.me = worker_identity()
        self._beat: _Heartbeat | None = None
        self._engine: Any = None

    # --- locks -------------------------------------------------------------------------

    @contextmanager
    def file_lock(self, name: str, waiting: str | None = None) -> Iterator[None]:
        """Hold ``RUN/locks/NAME.lock`` exclusively (printing ``waiting`` if it must wait)."""
        path = self.run.root / "locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    print(waiting, file=self.out, flush=True)
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @contextmanager
    def study_lock(self, name: str) -> Iterator[None]:
        """A lock shared by every worker of the study: advisory in PostgreSQL, else a file."""
        if not (self.loc.kind == "server" and engine_url(self.loc.url).startswith("postgresql")):
            with self.file_lock(name):
                yield
            return
        import sqlalchemy

        if self._engine is None:
            self._engine = sqlalchemy.create_engine(
                engine_url(self.loc.url), pool_pre_ping=True,
                connect_args={"connect_timeout": 5})
        digest = hashlib.sha256(f"codesign/{self.loc.study}/{name}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        where = self.loc.masked()

        def take() -> Any:
            conn = self._engine.connect()
            try:
                conn.execute(sqlalchemy.text("select pg_advisory_lock(:k)"), {"k": key})
            except Exception:
                conn.close()
                raise
            return conn

        conn = retrying(take, where)
        try:
            yield
        finally:
            try:
                conn.execute(sqlalchemy.text("select pg_advisory_unlock(:k)"), {"k": key})
            except Exception:  # noqa: BLE001  (a lost connection released the lock already)
                conn.invalidate()
            finally:
                conn.close()

    # --- trials ------------------------------------------------------------------------

    def claim(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Mark ``trial`` as this worker's; start its heartbeat on a server study."""
        trial.set_user_attr("worker", self.me)
        storage = study._storage  # noqa: SLF001
        if self.loc.kind == "server" and _heartbeat_on(storage):
            self._beat = _Heartbeat(storage, trial._trial_id)  # noqa: SLF001
            self._beat.start()

    def release(self) -> None:
        """Stop the heartbeat of this worker's trial."""
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def recover(self, study: optuna.Study, all_dead: bool = False) -> list[int]:
        """Fail trials that dead workers left RUNNING and queue their parameters again.

        Args:
            study: The study.
            all_dead: Every RUNNING trial is dead (one worker holds the run's lock).

        Returns:
            Numbers of the trials that were failed.
        """
        with self.study_lock("recover"):
            failed = []
            storage = study._storage  # noqa: SLF001
            stale: set[int] = set()
            if self.loc.kind == "server" and _heartbeat_on(storage):
                stale = set(storage._get_stale_trial_ids(study._study_id))  # noqa: SLF001
            now = datetime.now()
            for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                owner = t.user_attrs.get("worker")
                if owner == self.me:
                    continue
                alive = owner_alive(owner)
                orphan = owner is None and t.datetime_start is not None and (
                    (now - t.datetime_start).total_seconds() > ORPHAN_S)
                if t._trial_id in stale:  # noqa: SLF001
                    reason = f"worker lost (no heartbeat for {GRACE_S} s)"
                elif all_dead or alive is False or orphan:
                    reason = INTERRUPTED
                else:
                    continue
                if fail_and_requeue(study, t, reason):
                    failed.append(t.number)
            return failed


def fail_and_requeue(study: optuna.Study, t: FrozenTrial, reason: str) -> bool:
    """Fail a RUNNING trial of someone else with ``reason`` and queue its parameters again.

    Returns:
        False if the trial had ended meanwhile (nothing done).
    """
    storage = study._storage  # noqa: SLF001  (the public Study has no state setter)
    try:
        for key, value in Measurement.failure(reason).to_attrs().items():
            storage.set_trial_user_attr(t._trial_id, key, value)  # noqa: SLF001
        if not storage.set_trial_state_values(t._trial_id, TrialState.FAIL):  # noqa: SLF001
            return False
    except UpdateFinishedTrialError:
        return False
    if t.params:
        study.enqueue_trial(dict(t.params), user_attrs={"retry_of": t.number})
    return True


def _heartbeat_on(storage: Any) -> bool:
    try:
        return storage.get_heartbeat_interval() is not None
    except AttributeError:
        return False


class _Heartbeat:
    """Records a trial's heartbeat every ``HEARTBEAT_S`` seconds, through outages."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage = storage
        self.trial_id = trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self.storage.record_heartbeat(self.trial_id)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=HEARTBEAT_S + 5)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # noqa: BLE001  (an outage: the next beat tries again)
                continue


def wait_a_moment(seconds: float = POLL_S) -> None:
    """Pause while other workers finish the last trials."""
    time.sleep(seconds)
