"""The child's main loop: receive a request, run it, send the result back."""

from __future__ import annotations

import importlib
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any

from codesign.child.source import SOURCES, SourceRequests
from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure

# Request handlers besides the model sources (:data:`codesign.child.source.SOURCES`), by the
# module and class that hold them (``do_<request>`` methods); the child imports them all by
# name when it starts, so this module imports no feature package.
HANDLERS = ("codesign.ramcheck:RamCheckHandlers", "codesign.child.files:FileHandlers")
Handler = Callable[..., Any]


def handler_table(progress: Callable[[dict[str, Any]], None]) -> dict[str, Handler]:
    """Every request the child answers, by name (an earlier class wins a name both define).

    The model sources come first, then the requests they share
    (:class:`~codesign.child.source.SourceRequests`), then :data:`HANDLERS`.

    Args:
        progress: Sends a progress record to the search process.
    """
    sources = {name: _load(ref)(progress=progress) for name, ref in SOURCES.items()}
    table: dict[str, Handler] = {}
    others = [_load(ref)(progress=progress) for ref in HANDLERS]
    for handlers in [*sources.values(), SourceRequests(sources), *others]:
        for attr in dir(handlers):
            if attr.startswith("do_"):
                table.setdefault(attr[3:], getattr(handlers, attr))
    return table


def _load(ref: str) -> Any:
    """The class ``module:Class`` names (its module imported now)."""
    module, name = ref.split(":")
    return getattr(importlib.import_module(module), name)


def serve(conn: Any, log_path: str | None = None) -> None:
    """Serve requests on ``conn`` until ``stop`` or the pipe closes.

    Replies are ``("ok", result)``, ``("fail", reason)`` for a failed request,
    ``("device_down", reason)`` when the profile's device cannot be reached,
    ``("user_error", message)``, or any number of ``("progress", info)`` first.

    Args:
        conn: The child's end of the pipe.
        log_path: Where the child's stdout and stderr go (``None``: discarded).
    """
    redirect_output(log_path)
    _die_with_parent()
    import codesign  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the search process's to handle
    table = handler_table(lambda info: conn.send(("progress", info)))
    while True:
        try:
            method, kwargs = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if method == "stop":
            return
        try:
            handler = table.get(method)
            if handler is None:
                raise TrialFailure(f"unknown request {method!r}")
            result = handler(**kwargs)
            conn.send(("ok", result))
        except CodesignError as exc:
            conn.send(("user_error", str(exc)))
        except DeviceUnavailable as exc:
            conn.send(("device_down", str(exc)))
        except TrialFailure as exc:
            conn.send(("fail", str(exc)))
        except Exception as exc:  # anything else fails this request, not the child
            last = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{os.path.basename(last.filename)}:{last.lineno}"
            conn.send(("fail", f"{type(exc).__name__}: {exc} (at {where})"))


def _die_with_parent() -> None:
    """Ask Linux to kill this process when the search process dies (SIGKILL included)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: the child still exits when the pipe closes


def redirect_output(log_path: str | None) -> None:
    """Point file descriptors 1 and 2 (also TensorFlow's C++ logging) at the log."""
    target = log_path or os.devnull
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
