"""Where a study lives: SQLite in the run directory, a journal file, or a database server.

One worker writes a run's SQLite file (``RUN/study.db``), as always. SQLite
locks under parallel writers, so several local workers share a journal file
(``RUN/study.journal``, Optuna's ``JournalStorage``), and workers on several
machines share a database server (``--storage postgresql://...``).

A study is named by a *locator*: the SQLAlchemy URL for SQLite,
``journal:///ABS/PATH`` for a journal, and ``URL#STUDY`` for a server (the
study name after the last ``#``). Passwords never reach the run directory or
any output: :func:`mask_url` hides them, and a server URL is recorded without
its password (it comes back from ``CODESIGN_STORAGE``, ``PGPASSWORD`` or
``~/.pgpass``).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from urllib.parse import urlsplit

import optuna

from codesign.errors import CodesignError
from codesign.run.urls import mask_url, without_password

__all__ = ["mask_url", "without_password"]  # re-exported for callers of this module

STUDY_NAME = "codesign"
JOURNAL_SCHEME = "journal:///"
STORAGE_ENV = "CODESIGN_STORAGE"
SERVER_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "mysql", "mysql+pymysql")
STUDY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
HEARTBEAT_S = int(os.environ.get("CODESIGN_HEARTBEAT_S", "10"))
GRACE_S = int(os.environ.get("CODESIGN_GRACE_S", str(6 * HEARTBEAT_S)))

def check_server_url(url: str) -> None:
    """Refuse a ``--storage`` that is not a database server URL codesign can reach.

    Raises:
        CodesignError: If the scheme is not a server's or its driver is missing.
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SERVER_SCHEMES:
        raise CodesignError(
            f"--storage {mask_url(url)!r}: give a database server URL such as "
            "postgresql://user:password@host:5432/db (a run's own SQLite or journal needs none)"
        )
    parts = urlsplit(url)
    if not parts.hostname or not parts.path.strip("/"):
        raise CodesignError(f"--storage {mask_url(url)}: name the host and the database")
    if scheme.startswith("postgres"):
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            raise CodesignError(
                "PostgreSQL storage needs psycopg2: .venv/bin/pip install psycopg2-binary"
            ) from None


def check_study_name(name: str) -> None:
    """Refuse a study name with characters a locator or a shell could misread.

    Raises:
        CodesignError: If ``name`` is not 1-100 letters, digits and ``_ . -``.
    """
    if not STUDY_NAME_RE.match(name):
        raise CodesignError(
            f"--study {name!r}: use 1 to 100 letters, digits and _ . - (starting with a letter "
            "or digit)"
        )


@dataclass(frozen=True)
class Locator:
    """A parsed study locator.

    Attributes:
        kind: ``sqlite``, ``journal`` or ``server``.
        url: SQLAlchemy URL (sqlite, server) or the journal file's path.
        study: The study's name.
    """

    kind: str
    url: str
    study: str = STUDY_NAME

    @property
    def shared(self) -> bool:
        """Whether several workers may write this study at once."""
        return self.kind != "sqlite"

    def text(self) -> str:
        """The locator as one string (the inverse of :func:`parse_locator`)."""
        if self.kind == "journal":
            return JOURNAL_SCHEME + self.url.lstrip("/") + f"#{self.study}"
        if self.kind == "server":
            return f"{self.url}#{self.study}"
        return self.url

    def masked(self) -> str:
        """Where the study is, for messages (no password)."""
        if self.kind == "journal":
            return self.url
        if self.kind == "sqlite":
            return self.url.removeprefix("sqlite:///")
        return f"study {self.study} at {mask_url(self.url)}"


def parse_locator(text: str) -> Locator:
    """Split a locator string into its parts (see the module docstring)."""
    if text.startswith(JOURNAL_SCHEME):
        body, _, study = text.rpartition("#") if "#" in text else (text, "", STUDY_NAME)
        return Locator("journal", "/" + body.removeprefix(JOURNAL_SCHEME), study or STUDY_NAME)
    if text.startswith("sqlite:"):
        return Locator("sqlite", text)
    url, sep, study = text.rpartition("#")
    if not sep:
        return Locator("server", text)
    return Locator("server", url, study or STUDY_NAME)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL with the driver named (SQLAlchemy 2.1 assumes psycopg 3)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


def with_password(recorded: str) -> str:
    """The recorded (password-less) server URL, or ``CODESIGN_STORAGE`` if it is the same one."""
    given = os.environ.get(STORAGE_ENV)
    if given and without_password(given) == recorded:
        return given
    return recorded


def build_storage(loc: Locator, heartbeat: bool = False) -> optuna.storages.BaseStorage:
    """The Optuna storage of a locator.

    A server's storage retries with back-off while the database is away (see
    :mod:`codesign.run.retry`) and, with ``heartbeat``, records each
    running trial's heartbeat so a lost worker's trial can be failed.

    Raises:
        CodesignError: If a journal's folder is missing or the server stays unreachable.
    """
    if loc.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        if not os.path.isdir(os.path.dirname(loc.url)):
            raise CodesignError(f"no run directory for the journal {loc.url}")
        return optuna.storages.JournalStorage(
            JournalFileBackend(loc.url, lock_obj=JournalFileOpenLock(loc.url))
        )
    if loc.kind == "sqlite":
        return optuna.storages.RDBStorage(loc.url)
    from codesign.run.retry import RetryingRDBStorage, open_with_retry

    kwargs: dict = {"engine_kwargs": {"pool_pre_ping": True}}
    if engine_url(loc.url).startswith("postgresql"):
        kwargs["engine_kwargs"]["connect_args"] = {"connect_timeout": 5}
    if heartbeat:  # codesign asks and tells itself, and records the heartbeats (coord)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    url = engine_url(loc.url)
    return open_with_retry(lambda: RetryingRDBStorage(url, **kwargs), loc.masked())

