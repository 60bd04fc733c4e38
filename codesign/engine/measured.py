"""One measured trial for sources whose every candidate is built, converted and timed.

The HyperModel and trained-model sources evaluate a trial alike: the child
builds, converts and measures accuracy under the host's shared lock (so no
timing on this machine overlaps it), then times the file alone; the
:class:`~codesign.run.measurement.Measurement` goes into the trial's user
attributes and budget constraints. Search process only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.hardware.devicelock import host_work
from codesign.run.directory import RunDir
from codesign.run.measurement import Measurement


@dataclass
class ChildTrial:
    """An evaluation of one trial through the evaluation child (a source's ``Evaluate``).

    Attributes:
        child: The evaluation child.
        cfg: The search's settings.
        run: The run directory (trial models go to its cache).
        ctx: What the source's child requests carry (model, data, seed, profile...).
    """

    child: EvalChild
    cfg: SearchConfig
    run: RunDir
    ctx: dict[str, Any]


@dataclass
class Requests:
    """The child requests of one trial.

    Attributes:
        evaluate: Name of the request that builds, converts and measures accuracy.
        time: Name of the request that times the written file.
        ctx: What every request carries (model, data, seed, profile...).
        progress: Receives the child's progress records (or None).
        extra_times: Seconds spent in the search process before evaluation, by stage.
        budgets: The budgets the trial is held to (None: all of the settings').
    """

    evaluate: str
    time: str
    ctx: dict[str, Any]
    progress: Any = None
    extra_times: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] | None = None


def measure_trial(trial: optuna.Trial, child: EvalChild, cfg: SearchConfig, req: Requests,
                  args: dict[str, Any], model_path: str) -> Measurement:
    """Evaluate and time one candidate; record it on ``trial``.

    Args:
        trial: The asked trial (its attributes and constraints are set).
        child: The evaluation child.
        cfg: The search's settings (budgets; is the device remote).
        req: The requests to make.
        args: The candidate's arguments of the evaluation request.
        model_path: Where the child writes the ``.tflite``.

    Returns:
        The measurement, timed.
    """
    t0 = time.perf_counter()
    with host_work(cfg.profile_spec.remote):  # off the cores while a timing runs
        m = Measurement.from_attrs(child.call(req.evaluate, progress=req.progress, ctx=req.ctx,
                                              model_path=model_path, **args))
    t1 = time.perf_counter()
    m = m.timed(child.call(req.time, ctx=req.ctx, model_path=model_path),
                time.perf_counter() - t1)
    spent = sum(req.extra_times.values())
    m = replace(m, times={**m.times, **req.extra_times,
                          "total": round(time.perf_counter() - t0 + spent, 4)})
    m.record(trial, cfg.budgets() if req.budgets is None else req.budgets)
    return m
