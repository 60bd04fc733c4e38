"""A measured trial through the child's model-source requests: evaluate, then time alone.

The HyperModel and trained-model sources evaluate a trial alike: the child
builds, converts and measures accuracy under the host's shared lock (so no
timing on this machine overlaps it), then times the file alone; the
:class:`~codesign.run.measurement.Measurement` goes into the trial's user
attributes and budget constraints. Search process only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.hardware.devicelock import host_work
from codesign.run.directory import RunDir
from codesign.run.measurement import Measurement
from codesign.space.candidate import Candidate

# An untimed measurement and a way to time its file -> the measurement with its latency.
Price = Callable[[Measurement, Callable[[], dict[str, Any]]], Measurement]


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
    """The child requests of one trial: the model source's ``source_evaluate`` and ``source_time``.

    Attributes:
        source: The model source's name in the child (see
            :data:`codesign.child.source.SOURCES`).
        ctx: What every request carries (model, data, seed, profile...).
        progress: Receives the child's progress records (or None).
        extra_times: Seconds spent in the search process before evaluation, by stage.
        budgets: The budgets the trial is held to (None: all of the settings').
    """

    source: str
    ctx: dict[str, Any]
    progress: Any = None
    extra_times: dict[str, float] = field(default_factory=dict)
    budgets: dict[str, float] | None = None


def measure(child: EvalChild, req: Requests, cand: Candidate, model_path: str,
            remote: bool = False, price: Price | None = None) -> Measurement:
    """Build, convert and measure ``cand`` in the child, then time its file alone.

    Args:
        child: The evaluation child.
        req: The source and what its requests carry.
        cand: The candidate.
        model_path: Where the child writes the ``.tflite``.
        remote: The device is remote (host work then need not leave the cores to it).
        price: Gives the untimed measurement its latency, timing the file only
            if it decides to (a hybrid search's screen); None: always timed.

    Returns:
        The measurement, timed or priced (stage seconds of the child and of the timing).
    """
    with host_work(remote):  # off the cores while a timing runs
        m = Measurement.from_attrs(child.call(
            "source_evaluate", progress=req.progress, source=req.source, ctx=req.ctx,
            candidate=cand.request(), model_path=model_path))

    def time_it() -> dict[str, Any]:
        return time_file(child, model_path, req.source, req.ctx)

    if price is not None:
        return price(m, time_it)
    t1 = time.perf_counter()
    return m.timed(time_it(), time.perf_counter() - t1)


def time_file(child: EvalChild, model_path: str, source: str = "supernet",
              ctx: dict[str, Any] | None = None) -> dict[str, Any]:
    """Latency figures of a written candidate file, timed alone by its model source."""
    return child.call("source_time", source=source, ctx=ctx or {}, model_path=model_path)


def measure_trial(trial: optuna.Trial, child: EvalChild, cfg: SearchConfig, req: Requests,
                  cand: Candidate, model_path: str, price: Price | None = None) -> Measurement:
    """Evaluate and time one candidate; record it on ``trial``.

    Args:
        trial: The asked trial (its attributes and constraints are set).
        child: The evaluation child.
        cfg: The search's settings (budgets; is the device remote).
        req: The requests to make.
        cand: The candidate.
        model_path: Where the child writes the ``.tflite``.
        price: See :func:`measure`.

    Returns:
        The measurement, timed or priced.
    """
    t0 = time.perf_counter()
    m = measure(child, req, cand, model_path, cfg.profile_spec.remote, price)
    spent = sum(req.extra_times.values())
    m = replace(m, times={**m.times, **req.extra_times,
                          "total": round(time.perf_counter() - t0 + spent, 4)})
    m.record(trial, cfg.budgets() if req.budgets is None else req.budgets)
    return m
