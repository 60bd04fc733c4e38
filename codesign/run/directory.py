"""The run directory: paths, the owner lock and the saved settings."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError
from codesign.run.files import write_atomic
from codesign.run.storage import Locator, with_password, without_password


@dataclass(frozen=True)
class RunDir:
    """Paths of one run (everything a later command needs lives here).

    Attributes:
        root: The run directory.
    """

    root: Path

    @property
    def sqlite_file(self) -> Path:
        """The SQLite study of a one-worker run."""
        return self.root / "study.db"

    @property
    def journal_file(self) -> Path:
        """The journal of a run that several local workers share."""
        return self.root / "study.journal"

    @property
    def storage_file(self) -> Path:
        """Names the database server of a run whose study lives there (no password)."""
        return self.root / "storage.json"

    @property
    def study_db(self) -> Path:
        """The file that holds the study, or names the server that does."""
        for path in (self.journal_file, self.storage_file):
            if path.is_file():
                return path
        return self.sqlite_file

    def locator(self) -> Locator:
        """Where the run's study lives (see :mod:`codesign.run.storage`)."""
        if self.storage_file.is_file():
            try:
                rec = json.loads(self.storage_file.read_text())
                return Locator("server", with_password(rec["url"]), rec["study"])
            except (OSError, ValueError, KeyError, TypeError):
                raise CodesignError(f"{self.storage_file} is unreadable; restore it") from None
        if self.journal_file.is_file():
            return Locator("journal", str(self.journal_file.resolve()))
        return Locator("sqlite", f"sqlite:///{self.sqlite_file.resolve()}")

    def record_server(self, url: str, study: str) -> None:
        """Note (without the password) that the run's study lives on a server."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.storage_file,
                     json.dumps({"url": without_password(url), "study": study}, indent=1))

    @property
    def storage_url(self) -> str:
        """The study's locator string (the SQLAlchemy URL of a one-worker run)."""
        return self.locator().text()

    @property
    def config_file(self) -> Path:
        """Settings of the run (checked when it is resumed)."""
        return self.root / "config.json"

    @property
    def lock_file(self) -> Path:
        """Holds the pid of the process that owns the run."""
        return self.root / "lock"

    @property
    def cache(self) -> Path:
        """Every evaluated candidate's model."""
        return self.root / "cache"

    @property
    def models(self) -> Path:
        """Models of the Pareto front with their manifests."""
        return self.root / "models"

    @property
    def references_file(self) -> Path:
        """Measurements of the reference networks."""
        return self.root / "references.json"

    def trial_model(self, number: int) -> Path:
        """The cached model of trial ``number``."""
        return self.cache / f"trial-{number}.tflite"

    def exists(self) -> bool:
        """Whether a run was started here."""
        return self.config_file.is_file()

    # --- settings ----------------------------------------------------------------------

    def check_settings(self, identity: dict[str, Any], trials: int) -> None:
        """Refuse to resume with different settings; record them on first use.

        Raises:
            CodesignError: If ``identity`` differs from the saved settings, or
                ``trials`` is smaller than the run's.
        """
        if not self.config_file.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            self.save_settings(identity, trials)
            _accepted(self.root)
            return
        try:
            saved = json.loads(self.config_file.read_text())
        except (OSError, ValueError) as exc:
            raise CodesignError(
                f"{self.config_file} is unreadable ({exc}); use another --out"
            ) from None
        diff = _first_difference(saved.get("identity", {}), json.loads(json.dumps(identity)))
        if diff is not None:
            key, old_value, new_value = diff
            raise CodesignError(
                f"{self.root} was run with different {key} ({_short(old_value)} vs now "
                f"{_short(new_value)}); use the same settings or another --out"
            )
        if trials < saved.get("trials", 0):
            raise CodesignError(
                f"{self.root} was run with --trials {saved['trials']}; --trials can only grow "
                f"(got {trials})"
            )
        if trials != saved.get("trials"):
            self.save_settings(identity, trials)
        _accepted(self.root)

    def save_settings(self, identity: dict[str, Any], trials: int) -> None:
        """Write the settings file atomically."""
        write_atomic(self.config_file,
                     json.dumps({"identity": identity, "trials": trials}, indent=1))

    # --- lock --------------------------------------------------------------------------

    def acquire(self) -> bool:
        """Take the owner lock.

        Returns:
            True if a previous owner died without releasing it (its RUNNING
            trials were interrupted).

        Raises:
            CodesignError: If a live process owns the run.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        stale = False
        for _ in range(3):
            try:
                fd = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner and _alive(owner):
                    raise CodesignError(
                        f"{self.root} is in use by process {owner['pid']}; wait for it to end "
                        "or stop it, then rerun"
                    ) from None
                stale = True
                self.lock_file.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump(me, fh)
            return stale
        raise CodesignError(f"cannot take the lock {self.lock_file}; remove it and rerun")

    def release(self) -> None:
        """Release the owner lock if this process holds it."""
        owner = self._owner()
        if owner and owner.get("pid") == os.getpid():
            self.lock_file.unlink(missing_ok=True)

    def _owner(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.lock_file.read_text())
        except (OSError, ValueError):
            return None


def _alive(owner: dict[str, Any]) -> bool:
    if owner.get("host") != socket.gethostname():
        return True  # cannot tell; assume the other machine's process lives
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie holds its pid but is dead
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


_ON_ACCEPTED: ContextVar[Callable[[Path], None] | None] = ContextVar("on_accepted",
                                                                   default=None)


@contextmanager
def when_accepted(callback: Callable[[Path], None]) -> Iterator[None]:
    """Within the block, call ``callback(run root)`` when a run directory accepts its settings.

    :meth:`RunDir.check_settings` calls it once it recorded a new run's
    settings or found a resume's equal, before any work.
    """
    token = _ON_ACCEPTED.set(callback)
    try:
        yield
    finally:
        _ON_ACCEPTED.reset(token)


def _accepted(root: Path) -> None:
    callback = _ON_ACCEPTED.get()
    if callback is not None:
        callback(root)


def _first_difference(old: Any, new: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first (dotted key, old, new) where two JSON values differ, or None."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else key
            found = _first_difference(old.get(key), new.get(key), sub)
            if found is not None:
                return found
        return None
    return None if old == new else (path, old, new)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:57] + "..."
