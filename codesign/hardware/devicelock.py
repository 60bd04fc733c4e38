"""One lock per device: while a latency is timed, no other codesign work runs there.

Timing takes the device's lock exclusively; every other heavy stage (building,
converting, evaluating accuracy) takes it shared. Any number of codesign
processes on one machine thus overlap their other work freely, but a timing
waits for them to finish and blocks them while it runs. The lock is an
advisory ``flock`` on a file named after the device, so it also covers
processes of other runs and workers: ``flock`` locks belong to an open file,
not to a process or thread, so every holder opens the file itself (two
workers, or a search and its evaluation child, never share a descriptor) and
the kernel drops a dead holder's lock with its descriptors.

The host's CPU is the device ``local``: a search process holds it shared
around the work its evaluation child does on the host (building, converting,
measuring accuracy), so a local timing by another worker waits for that work
and blocks new work while it runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_DIR_ENV = "CODESIGN_LOCK_DIR"
HOST = "local"


def lock_path(device: str) -> Path:
    """The lock file of ``device`` (``CODESIGN_LOCK_DIR`` or the temp directory)."""
    base = Path(os.environ.get(LOCK_DIR_ENV, tempfile.gettempdir()))
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in device)
    return base / f"codesign-device-{safe}.lock"


@contextmanager
def device_lock(device: str, exclusive: bool) -> Iterator[None]:
    """Hold the device's lock: exclusive for timing, shared for other work."""
    path = lock_path(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def host_work(remote: bool = False) -> contextlib.AbstractContextManager[None]:
    """Hold the host CPU's lock shared: work that must not overlap a local timing.

    Args:
        remote: The profile times on another device, so host work never waits
            for a timing here (nothing is held).
    """
    return contextlib.nullcontext() if remote else device_lock(HOST, exclusive=False)
