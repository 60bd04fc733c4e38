"""The tests' plugin of the evaluation child: requests and a crash that provoke real failures.

Python imports ``sitecustomize`` at start-up from any directory on ``PYTHONPATH``,
so a process started with :func:`tests.conftest.hooks_env` (the search process,
and the evaluation child it spawns) gets these; codesign itself holds no test code.
With ``CODESIGN_TEST_HOOKS=1`` the child also answers ``test_pid`` and
``test_segfault``, and ``evaluate`` segfaults on the model path that ends with
``CODESIGN_TEST_CRASH_MODEL``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from typing import Any


def _install() -> None:
    from codesign.child import server

    plain = server.handler_table

    def with_hooks(progress: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        table = plain(progress)
        evaluate = table["evaluate"]
        target = os.environ.get("CODESIGN_TEST_CRASH_MODEL")

        def crashing_evaluate(**kwargs: Any) -> Any:
            if target and str(kwargs.get("model_path", "")).endswith(target):
                os.kill(os.getpid(), signal.SIGSEGV)
            return evaluate(**kwargs)

        table["evaluate"] = crashing_evaluate
        table["test_pid"] = lambda: {"pid": os.getpid()}
        table["test_segfault"] = lambda: os.kill(os.getpid(), signal.SIGSEGV)
        return table

    server.handler_table = with_hooks


if os.environ.get("CODESIGN_TEST_HOOKS") == "1":
    _install()
