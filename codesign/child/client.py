"""The search-side handle of the evaluation child process."""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable
from typing import Any

from codesign.errors import CodesignError, DeviceUnavailable, EvaluatorCrashed, TrialFailure

ProgressFn = Callable[[dict[str, Any]], None]


class EvalChild:
    """Start, call and restart the evaluation child process.

    The child is started lazily on the first call and restarted after a crash.
    Every call sends the last ``setup`` again to a fresh child, so a restart is
    invisible to the caller apart from the failed call.

    Args:
        timeout_s: Longest a single call may take before the child is killed and
            the call fails (``None`` for no limit).
        log_path: File that receives the child's stdout and stderr (TensorFlow's
            and the converter's chatter); ``None`` discards them.
    """

    def __init__(self, timeout_s: float | None = 900.0, log_path: str | None = None) -> None:
        self.timeout_s = timeout_s
        self.log_path = log_path
        self._ctx = mp.get_context("spawn")
        self._proc: mp.process.BaseProcess | None = None
        self._conn: Any = None
        self._setup: dict[str, Any] | None = None
        self.restarts = 0

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> EvalChild:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        from codesign.child.server import serve

        parent, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=serve, args=(child, self.log_path), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        if self._setup is not None:
            self._roundtrip("setup", self._setup, None, self.timeout_s)

    def close(self) -> None:
        """Stop the child process."""
        if self._proc is None:
            return
        try:
            self._conn.send(("stop", {}))
        except (OSError, ValueError):
            pass
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._proc = None
        self._conn = None

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        self._proc = None
        self._conn = None

    # --- calls -------------------------------------------------------------------------

    def setup(self, progress: ProgressFn | None = None, **kwargs: Any) -> dict[str, Any]:
        """Load data, profile and supernet in the child (training it if needed).

        The settings are kept and replayed to any restarted child.
        """
        self._setup = None  # a child started by this call must not replay an older set-up
        result = self.call("setup", progress=progress, timeout_s=None, **kwargs)
        self._setup = kwargs
        return result

    def call(
        self,
        method: str,
        progress: ProgressFn | None = None,
        timeout_s: float | None | str = "default",
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Run ``method`` in the child and return its result.

        Raises:
            TrialFailure: The child reported a failure of this request.
            DeviceUnavailable: The profile's device could not be reached.
            EvaluatorCrashed: The child died (it is restarted on the next call).
            CodesignError: The child reported a user error.
        """
        limit = self.timeout_s if timeout_s == "default" else timeout_s
        if self._proc is None or not self._proc.is_alive():
            self._start()
        return self._roundtrip(method, kwargs, progress, limit)

    def _roundtrip(
        self, method: str, kwargs: dict[str, Any], progress: ProgressFn | None, limit: Any
    ) -> dict[str, Any]:
        assert self._conn is not None and self._proc is not None
        try:
            self._conn.send((method, kwargs))
        except (OSError, ValueError) as exc:
            self._kill()
            self.restarts += 1
            raise EvaluatorCrashed(f"evaluation process is gone ({exc})") from None
        while True:
            ready = self._conn.poll(limit if limit is not None else None)
            if not ready:
                self._kill()
                self.restarts += 1
                raise TrialFailure(f"{method} took longer than {limit:.0f} s; process restarted")
            try:
                kind, payload = self._conn.recv()
            except (EOFError, OSError):
                code = self._exit_code()
                self._kill()
                self.restarts += 1
                msg = f"evaluation process died ({code}) during {method}"
                raise EvaluatorCrashed(msg) from None
            if kind == "progress":
                if progress is not None:
                    progress(payload)
                continue
            if kind == "ok":
                return payload
            if kind == "user_error":
                raise CodesignError(payload)
            if kind == "device_down":
                raise DeviceUnavailable(payload)
            raise TrialFailure(payload)

    def _exit_code(self) -> str:
        assert self._proc is not None
        self._proc.join(timeout=5)
        code = self._proc.exitcode
        if code is None:
            return "no exit code"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"
