"""The device lock: timing is exclusive, other work is shared."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from codesign.hardware.devicelock import device_lock


@pytest.fixture(autouse=True)
def _lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODESIGN_LOCK_DIR", str(tmp_path))


def _holder(exclusive: bool, held: threading.Event, release: threading.Event) -> None:
    with device_lock("board", exclusive=exclusive):
        held.set()
        release.wait(10)


def _acquire(exclusive: bool, got: threading.Event) -> threading.Thread:
    def run() -> None:
        with device_lock("board", exclusive=exclusive):
            got.set()

    t = threading.Thread(target=run)
    t.start()
    return t


def test_timing_waits_for_other_work_and_blocks_it() -> None:
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holder, args=(True, held, release))
    holder.start()
    assert held.wait(5)
    got = threading.Event()
    waiter = _acquire(False, got)
    assert not got.wait(0.3), "other work must wait while a timing holds the device"
    release.set()
    assert got.wait(5)
    holder.join()
    waiter.join()


def test_other_work_overlaps() -> None:
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holder, args=(False, held, release))
    holder.start()
    assert held.wait(5)
    got = threading.Event()
    waiter = _acquire(False, got)
    assert got.wait(5), "two shared holders overlap"
    timing = threading.Event()
    timer = _acquire(True, timing)
    assert not timing.wait(0.3), "a timing waits for shared work to end"
    release.set()
    assert timing.wait(5)
    for t in (holder, waiter, timer):
        t.join()


def test_devices_are_independent() -> None:
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_holder, args=(True, held, release))
    holder.start()
    assert held.wait(5)
    with device_lock("other-board", exclusive=True):
        pass
    release.set()
    holder.join()
