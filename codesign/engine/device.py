"""Waiting for a remote device that dropped out mid-search."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO, TypeVar

from codesign.errors import CodesignError, DeviceUnavailable, TrialFailure
from codesign.hardware.profile import Profile
from codesign.hardware.runner import BenchSettings, CommandRunner

T = TypeVar("T")
FIRST_PAUSE_S = 1.0
LONGEST_PAUSE_S = 30.0


def wait_for_device(profile: Profile, reason: str, out: TextIO,
                    sleep: Callable[[float], None] = time.sleep) -> None:
    """Probe the profile's device with back-off until it answers.

    Args:
        profile: A profile with a ``command`` runner.
        reason: Why the device was found unavailable (printed).
        out: Where the waiting is reported.
        sleep: Pause function (tests pass a fast one).

    Raises:
        CodesignError: If the device is still unavailable after ``runner.wait_s``;
            everything measured so far is kept and the same command resumes.
    """
    if not profile.remote:
        raise CodesignError(f"{reason}; rerun the same command to resume")
    spec = profile.runner
    runner = CommandRunner(spec, BenchSettings(profile.threads, profile.resolver, 1, 1))
    print(f"{reason}; waiting up to {spec.wait_s:.0f} s for device {spec.device} "
          "(measured trials are kept)", file=out, flush=True)
    deadline = time.monotonic() + spec.wait_s
    pause = FIRST_PAUSE_S
    last = reason
    while time.monotonic() < deadline:
        sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(2 * pause, LONGEST_PAUSE_S)
        try:
            runner.probe()
        except (DeviceUnavailable, TrialFailure) as exc:
            last = str(exc)
            continue
        print(f"device {spec.device} is back; the search goes on", file=out, flush=True)
        return
    raise CodesignError(
        f"device {spec.device} still unavailable after {spec.wait_s:.0f} s ({last}); every "
        "measured trial is kept: rerun the same command when the device is back"
    )


def retry_when_back(call: Callable[[], T], profile: Profile, out: TextIO,
                    attempts: int = 3) -> T:
    """Run ``call``; when the device drops out, wait for it and run ``call`` again.

    Raises:
        CodesignError: If the device does not come back (see :func:`wait_for_device`).
        TrialFailure: The call failed for another reason.
    """
    for _ in range(attempts - 1):
        try:
            return call()
        except DeviceUnavailable as exc:
            wait_for_device(profile, str(exc), out)
    try:
        return call()
    except DeviceUnavailable as exc:
        raise CodesignError(f"{exc}; rerun the same command to resume") from None

