"""Timing a converted model on the profile's device: one function for every runner.

A local profile is timed in this process with :class:`codesign.hardware.timing.Timer`
(windows interleaved with a reference network, disturbed windows re-timed); a
local TFLM profile with TFLM's reference kernels on this host (a relative
stand-in for a microcontroller, labelled so in the record); a ``command``
profile copies the file to its device and runs the device script there.
Either way the device's lock is held exclusively while it times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from codesign.errors import TrialFailure
from codesign.hardware.devicelock import device_lock
from codesign.hardware.profile import Profile
from codesign.hardware.runner import BenchSettings, CommandRunner, stats_of
from codesign.hardware.timing import Timer
from codesign.latency.measure import latency_record, local_timer

STAND_IN = ("TFLM reference kernels timed on this host: a relative stand-in for ranking, "
            "not a microcontroller's latency")


class DeviceTiming:
    """The child's timer of one profile's device (runner and local timer made once)."""

    def __init__(self) -> None:
        self._runner: CommandRunner | None = None
        self._timer: Timer | None = None
        self._timer_profile: Profile | None = None

    def time(self, profile: Profile, blob: bytes, path: Path,
             sample: np.ndarray) -> dict[str, Any]:
        """The latency record of ``blob`` (written at ``path``) on the profile's device.

        Raises:
            TrialFailure: If the runtime cannot run the model.
            DeviceUnavailable: If a remote device cannot be reached.
        """
        if profile.remote:
            got = self.time_together(profile, [blob], [path], [sample])[0]
            if isinstance(got, str):
                raise TrialFailure(got)
            return got
        with device_lock(profile.device, exclusive=True):
            if profile.micro:
                return micro_latency(profile, blob, sample)
            timed = self.local(profile).time([blob], [sample])
            stats = timed.stats[0]
            if isinstance(stats, str):
                raise TrialFailure(stats)
            return latency_record(stats, timed, profile)

    def time_together(self, profile: Profile, blobs: list[bytes], paths: list[Path],
                      samples: list[np.ndarray]) -> list[dict[str, Any] | str]:
        """The latency records of several models timed as one batch, or why one failed.

        Locally the models' windows are interleaved in one batch, so a slow
        phase of the machine slows them alike and their order holds; a remote
        device times the files in one run of its script; TFLM times them in turn.
        The records are those :meth:`time` gives.
        """
        if profile.remote:
            with device_lock(profile.device, exclusive=True):
                facts, entries = self.runner(profile).measure(paths)
            runtime = facts["runtime"]
            device = {"device": profile.device,
                      "runtime": f"{runtime.get('name')} {runtime.get('version')}"}
            got: list[dict[str, Any] | str] = []
            for entry in entries:
                try:
                    got.append({**stats_of(entry), **device})
                except TrialFailure as exc:  # this model failed on the device
                    got.append(str(exc))
            return got
        if not profile.micro:
            with device_lock(profile.device, exclusive=True):
                timed = self.local(profile).time(blobs, samples)
            return [s if isinstance(s, str) else latency_record(s, timed, profile)
                    for s in timed.stats]
        got = []
        for blob, path, sample in zip(blobs, paths, samples, strict=True):
            try:
                got.append(self.time(profile, blob, path, sample))
            except TrialFailure as exc:
                got.append(str(exc))
        return got

    def local(self, profile: Profile) -> Timer:
        """This child's local timer for ``profile`` (made once per profile)."""
        if self._timer is None or self._timer_profile != profile:
            self._timer = local_timer(profile)
            self._timer_profile = profile
        return self._timer

    def runner(self, profile: Profile) -> CommandRunner:
        """The ``command`` runner of a remote profile (made once per runner)."""
        if self._runner is None or self._runner.spec != profile.runner:
            self._runner = CommandRunner(profile.runner, BenchSettings(
                profile.threads, profile.resolver, profile.warmup_runs, profile.runs))
        return self._runner


def micro_latency(profile: Profile, blob: bytes, sample: np.ndarray) -> dict[str, Any]:
    """The ``latency_ms`` record of ``blob`` in TFLM on this host, marked as a stand-in.

    Raises:
        TrialFailure: If TFLM cannot run the model.
    """
    from codesign.hardware import tflm

    stats = tflm.time_latency(blob, sample, profile.warmup_runs, profile.runs)
    return {**stats.to_dict(), "device": profile.device,
            "runtime": f"{profile.runtime} {profile.runtime_version}", "stand_in": STAND_IN}
