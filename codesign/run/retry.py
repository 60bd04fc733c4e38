"""Riding out a database server that restarts: retry every storage call with back-off.

Optuna's ``RDBStorage`` turns a lost connection into ``StorageInternalError``
(or lets SQLAlchemy's ``OperationalError`` through). The subclass here
retries each storage call on those errors, pausing 0.5 s, 1 s, 2 s ... up to
10 s between tries, for at most ``CODESIGN_DB_WAIT_S`` seconds (default 600),
then stops with a :class:`CodesignError` (the study is intact on the server).
The engine pings its connections before use, so after a restart the next try
gets a fresh one.
"""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat

from codesign.errors import CodesignError

T = TypeVar("T")
FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 10.0


def wait_limit_s() -> float:
    """How long a call keeps retrying (``CODESIGN_DB_WAIT_S``, default 600 s)."""
    return float(os.environ.get("CODESIGN_DB_WAIT_S", "600"))


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database could not be reached (worth a retry)."""
    import sqlalchemy.exc as sa

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, (sa.OperationalError, sa.InterfaceError, sa.DisconnectionError)):
            return True
        if type(seen).__module__.startswith("psycopg2") and type(seen).__name__ in (
            "OperationalError", "InterfaceError"
        ):
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


def retrying(call: Callable[[], T], where: str, sleep: Callable[[float], None] = time.sleep,
             note: Callable[[str], None] | None = None) -> T:
    """Run ``call``; while it fails for want of the database, wait and run it again.

    Args:
        call: The storage operation.
        where: The database, for messages (already masked).
        sleep: Pause function (tests pass a fast one).
        note: Receives one line per outage (default: standard error).

    Raises:
        CodesignError: If the database stays unreachable for :func:`wait_limit_s`.
    """
    from codesign.run.storage import mask_url

    deadline = None
    pause = FIRST_PAUSE_S
    while True:
        try:
            return call()
        except CodesignError:
            raise  # an inner retry already gave up
        except Exception as exc:  # only connection errors are retried, see below
            if not is_connection_error(exc):
                raise
            if _refused_login(exc):
                first = mask_url(str(exc).strip().splitlines()[0])[:200]
                raise CodesignError(
                    f"database {where} refused the connection ({first}); check the user, "
                    "database and password (in the URL, CODESIGN_STORAGE, PGPASSWORD or "
                    "~/.pgpass)"
                ) from None
            now = time.monotonic()
            if deadline is None:
                deadline = now + wait_limit_s()
                reason = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else
                                  type(exc).__name__)
                (note or _stderr)(f"database {where} unreachable ({reason[:200]}); retrying "
                                  "with back-off")
            if now >= deadline:
                raise CodesignError(
                    f"database {where} unreachable for {wait_limit_s():.0f} s; the study is "
                    "kept there: rerun the same command when it is back"
                ) from None
            sleep(min(pause, max(0.0, deadline - now)))
            pause = min(2 * pause, LONGEST_PAUSE_S)


def _refused_login(exc: BaseException) -> bool:
    """Whether the server answered but refused the credentials (no retry helps)."""
    text = str(exc).lower()
    return any(m in text for m in ("password authentication failed", "no password supplied",
                                   "authentication failed", "role \"", "does not exist"))


def _stderr(line: str) -> None:
    print(f"codesign: {line}", file=sys.stderr, flush=True)


def open_with_retry(make: Callable[[], RDBStorage], where: str) -> RDBStorage:
    """Create a storage (which connects at once), retrying while the server is away."""
    with warnings.catch_warnings():  # heartbeat_interval is marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = retrying(make, where)
    if isinstance(storage, RetryingRDBStorage):
        storage.where = where
    return storage


def _wrap(name: str) -> Callable[..., Any]:
    method = getattr(RDBStorage, name)

    @functools.wraps(method)
    def call(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retrying(lambda: method(self, *args, **kwargs), self.where)

    return call


class RetryingRDBStorage(RDBStorage):
    """``RDBStorage`` whose every call waits out a database outage (see module docstring)."""

    where = "server"


_METHODS = sorted(
    {n for base in (optuna.storages.BaseStorage, BaseHeartbeat) for n in vars(base)
     if not n.startswith("__") and callable(getattr(RDBStorage, n, None))}
    # the private ones Optuna's cache wrapper calls on its backend
    | {"_get_stale_trial_ids", "_get_trials", "_create_new_trial", "_set_trial_param",
       "_get_best_trial_id"}
)
for _name in _METHODS:
    setattr(RetryingRDBStorage, _name, _wrap(_name))
