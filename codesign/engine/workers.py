"""Which storage a run uses, the settings a joining worker needs, and local worker processes.

``codesign search --workers N`` runs one worker itself and starts N - 1
``codesign worker`` processes that join its study; ``codesign worker`` run
by hand on another machine joins the same way. A joining worker reads the
search's settings from the study (user attribute ``config``), so it needs
only the storage, the study's name and the shared run directory.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any, TextIO

from codesign.config import SearchConfig
from codesign.errors import CodesignError
from codesign.preflight import preflight
from codesign.run.directory import RunDir
from codesign.run.runspace import saved_space
from codesign.run.storage import (
    STORAGE_ENV,
    STUDY_NAME,
    Locator,
    check_server_url,
    mask_url,
    without_password,
)

NOT_JOINABLE = ("out", "workers", "storage", "study", "_profile", "_space")
PR_SET_PDEATHSIG = 1


def choose_storage(run: RunDir, cfg: SearchConfig) -> Locator:
    """The storage of a search: as recorded in the run, as asked, or by the worker count.

    A new run keeps its study in SQLite with one worker, in a journal file
    with more, and on the server ``--storage`` names. A run keeps its storage
    when resumed.

    Raises:
        CodesignError: If the run's storage and the one asked for disagree.
    """
    if cfg.storage is not None:
        asked = Locator("server", cfg.storage, cfg.study)
        if run.storage_file.is_file():
            held = run.locator()
            if (without_password(held.url), held.study) != (without_password(cfg.storage),
                                                            cfg.study):
                raise CodesignError(
                    f"{run.root} holds {held.masked()}, not {asked.masked()}; give the same "
                    "--storage and --study or another --out"
                )
            return asked
        if run.journal_file.is_file() or run.sqlite_file.is_file():
            raise CodesignError(
                f"{run.root} keeps its study in {run.study_db.name}; rerun without --storage "
                "or use another --out"
            )
        run.record_server(cfg.storage, cfg.study)
        return asked
    if run.storage_file.is_file():
        held = run.locator()
        if cfg.study not in (STUDY_NAME, held.study):
            raise CodesignError(f"{run.root} holds {held.masked()}; --study {cfg.study} differs")
        return held
    if cfg.study != STUDY_NAME:
        raise CodesignError("--study names a study on a server: give --storage too")
    if run.journal_file.is_file():
        return run.locator()
    if run.sqlite_file.is_file():
        if cfg.workers > 1:
            raise CodesignError(
                f"{run.root} holds a one-worker SQLite study; rerun it with --workers 1, or "
                "start a new --out for several workers"
            )
        return run.locator()
    if cfg.workers > 1:
        return Locator("journal", str(run.journal_file.resolve()))
    return Locator("sqlite", f"sqlite:///{run.sqlite_file.resolve()}")


def joinable(cfg: SearchConfig) -> dict[str, Any]:
    """The settings a joining worker rebuilds the search's config from (JSON)."""
    out = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name not in NOT_JOINABLE}
    out["objectives"] = list(cfg.objectives)
    return out


def joined_config(saved: Any, run_dir: Path, loc: Locator) -> SearchConfig:
    """The search's config for a worker joining it (validated).

    Raises:
        CodesignError: If the study holds no settings (it was not started by
            ``codesign search``) or they no longer validate here.
    """
    if not isinstance(saved, dict):
        raise CodesignError(f"{loc.masked()} holds no codesign settings; start the study with "
                            "codesign search first")
    known = {f.name for f in fields(SearchConfig)} - set(NOT_JOINABLE)
    kwargs = {k: v for k, v in saved.items() if k in known}
    kwargs["objectives"] = tuple(kwargs.get("objectives", ("accuracy", "latency")))
    storage = loc.url if loc.kind == "server" else None
    space = saved_space(run_dir)  # the run's own, wherever its --space file was
    return preflight(SearchConfig(out=run_dir, storage=storage, study=loc.study, _space=space,
                                  **kwargs))


def join_locator(run: RunDir, storage: str | None, study: str) -> Locator:
    """Where a joining worker finds the study.

    Raises:
        CodesignError: If there is no shared study to join.
    """
    if storage is None and (run.storage_file.is_file() or run.journal_file.is_file()):
        held = run.locator()  # a server's password comes from CODESIGN_STORAGE
        if held.kind == "server" and study not in (STUDY_NAME, held.study):
            raise CodesignError(f"{run.root} holds {held.masked()}; --study {study} differs")
        return held
    storage = storage or os.environ.get(STORAGE_ENV)
    if storage:
        check_server_url(storage)
        if run.journal_file.is_file() or run.sqlite_file.is_file():
            raise CodesignError(f"{run.root} keeps its study in {run.study_db.name}, not on "
                                f"{mask_url(storage)}; join without --storage")
        if not run.storage_file.is_file():
            run.record_server(storage, study)
        return Locator("server", storage, study)
    if run.sqlite_file.is_file():
        raise CodesignError(
            f"{run.root} holds a one-worker SQLite study; start it with --workers N or "
            "--storage to share it"
        )
    raise CodesignError(
        f"no study to join in {run.root}; give --storage, or start it with codesign search"
    )


def _die_with_parent() -> None:  # pragma: no cover  (runs in the child before exec)
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


class LocalWorkers:
    """``codesign worker`` processes on this machine that join the search's study.

    Their output goes to ``RUN/logs/worker-K.log``; a server URL reaches them
    through the environment (never the command line, which ``ps`` shows).
    """

    def __init__(self, run: RunDir, loc: Locator) -> None:
        self.run = run
        self.loc = loc
        self.procs: list[tuple[int, subprocess.Popen]] = []

    def start(self, n: int, out: TextIO) -> None:
        """Start ``n`` workers."""
        if n <= 0:
            return
        logs = self.run.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k != STORAGE_ENV}
        if self.loc.kind == "server":
            env[STORAGE_ENV] = self.loc.url
        for k in range(2, n + 2):
            cmd = [sys.executable, "-m", "codesign.cli", "worker", "--out", str(self.run.root),
                   "--study", self.loc.study]
            with open(logs / f"worker-{k}.log", "ab") as log:
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
            self.procs.append((k, proc))
        print(f"workers: this process and {n} more sharing {self.loc.masked()} (logs in "
              f"{logs}/worker-K.log)", file=out, flush=True)

    def wait(self, out: TextIO, timeout_s: float = 600.0) -> None:
        """Wait for the workers to end (they stop once the study has its trials)."""
        for k, proc in self.procs:
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.terminate()
                code = proc.wait()
            if code not in (0, None):
                log = self.run.root / "logs" / f"worker-{k}.log"
                last = _last_line(log)
                print(f"worker {k} ended with exit code {code}: {mask_url(last)} (see {log})",
                      file=out, flush=True)
        self.procs = []

    def stop(self) -> None:
        """Stop any worker still running (their trials are failed and queued again)."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs = []


def _last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""
