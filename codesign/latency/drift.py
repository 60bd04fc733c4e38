"""How the device's speed moved since a latency model's build: the reference network re-timed.

Shown beside a check's and a search's figures, never applied to predictions
(see :func:`drift`).
"""

from __future__ import annotations

from typing import Any

from codesign.hardware.profile import Profile
from codesign.latency.model import LatencyModel, latency_dir
from codesign.latency.spaces import profile_key

DRIFT_WARN = 0.30  # a reference this much slower or faster than at the build: rebuild


def drift(profile: Profile, model: LatencyModel, worker: Any = None) -> float | None:
    """How slow the device runs now against the end of the model's build (not applied).

    The reference network is timed now as the build timed it once it had
    measured (the second quietest of five rounds). The ratio is shown, and
    a large one suggests a rebuild, but it does not scale predictions: on
    this machine, whose virtual cores run 1.3-1.7x slow for seconds at a
    time, such a ratio was 1.08, 1.13 and 1.26 on an unchanged machine and
    scaling by it took three checks from 98 %, 98 % and 89 % within ±10 % to
    52 %, 23 % and 0 %.

    Returns:
        Now over then; None for remote devices and models without that time.
    """
    if reference_then(profile, model) is None:
        return None
    from codesign.child import EvalChild

    if worker is None:
        with EvalChild(log_path=str(latency_dir() / "logs" / "worker.log")) as own:
            now = own.call("reference", profile=profile.path)["reference_ms"]
    else:
        now = worker.call("reference", profile=profile.path)["reference_ms"]
    return ratio_now(profile, model, now)


def reference_then(profile: Profile, model: LatencyModel) -> float | None:
    """The reference's time at the end of the build (None: remote, or not recorded)."""
    then = model.meta.get("reference_calibrated_ms")
    return None if not then or profile.remote else float(then)


def ratio_now(profile: Profile, model: LatencyModel, now: float | None) -> float | None:
    """The reference's time now over its time at the build (None when either is unknown)."""
    then = reference_then(profile, model)
    return now / then if then is not None and now else None


def drift_note(ratio: float | None, profile: Profile) -> str:
    """One phrase on the drift, with advice when it is large."""
    if ratio is None:
        return "drift since the build unknown"
    text = f"reference network now {ratio:.2f}x its time at the build, not applied"
    if abs(ratio - 1.0) > DRIFT_WARN:
        text += (f"; if that lasts, measure again: delete {latency_dir()}/"
                 f"{profile_key(profile)}.* and run codesign profile build {profile.name}")
    return text
