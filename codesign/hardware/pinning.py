"""Which core one-thread timing runs on: the idlest, and the idle ones in turn.

A virtual machine's cores run slow in stretches of their own, and another
process may hold one of them. One-thread timing is pinned to one allowed core
at a time: the idlest over a short sample when a window was preempted, and
any other core that stayed idle since the last look every quarter second or
so, so that a batch visits each core's fast phases. Linux only
(``/proc/stat``, ``sched_setaffinity``); elsewhere nothing is pinned.
"""

from __future__ import annotations

import os
import time

HOP_IDLE_SHARE = 0.7  # a core idle for this share of the last stretch counts as idle


def idle_ticks() -> dict[int, int]:
    """Idle plus iowait jiffies per core, from /proc/stat."""
    out: dict[int, int] = {}
    try:
        with open("/proc/stat") as fh:
            for line in fh:
                if line.startswith("cpu") and line[3:4].isdigit():
                    parts = line.split()
                    out[int(parts[0][3:])] = int(parts[4]) + int(parts[5])
    except (OSError, ValueError, IndexError):
        return {}
    return out


class Pinning:
    """Pins one-thread timing to one allowed core at a time; restores the affinity after."""

    SAMPLE_S = 0.05

    def __init__(self, threads: int) -> None:
        self.core: int | None = None
        self._old: set[int] | None = None
        self._mark: tuple[float, dict[int, int]] = (time.monotonic(), idle_ticks())
        if threads != 1 or not hasattr(os, "sched_setaffinity"):
            return
        self._old = os.sched_getaffinity(0)
        if len(self._old) > 1:
            self.repin()

    def repin(self) -> None:
        """Move to the core that was idlest over a short sample."""
        if self._old is None or len(self._old) < 2:
            return
        a = idle_ticks()
        time.sleep(self.SAMPLE_S)
        b = idle_ticks()
        allowed = sorted(self._old)
        idle = {c: b.get(c, 0) - a.get(c, 0) for c in allowed}
        if self.core is not None:
            idle[self.core] = idle.get(self.core, 0) + 1  # on a tie, stay
        self._pin(max(allowed, key=lambda c: idle.get(c, 0)))

    def hop(self) -> None:
        """Move to another core that was idle since the last look, if there is one.

        Each core of a virtual machine runs slow in stretches of its own, so a
        batch that visits the idle cores meets the fast phase sooner.
        """
        if self._old is None or len(self._old) < 2 or self.core is None:
            return
        then, before = self._mark
        now, ticks = time.monotonic(), idle_ticks()
        self._mark = (now, ticks)
        hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        span = max(1e-3, (now - then) * hz)
        idle = [c for c in sorted(self._old) if c != self.core
                and (ticks.get(c, 0) - before.get(c, 0)) / span >= HOP_IDLE_SHARE]
        if idle:
            self._pin(idle[0])

    def _pin(self, core: int) -> None:
        os.sched_setaffinity(0, {core})
        self.core = core
        self._mark = (time.monotonic(), idle_ticks())

    def restore(self) -> None:
        """Give the thread back the cores it was allowed before."""
        if self._old is not None and self.core is not None:
            os.sched_setaffinity(0, self._old)
