"""The built-in family's search: its plan, and the evaluation of one trial.

:class:`BuiltinPlan` prepares the run (supernet, quality report, references,
noise floor, latency model, accuracy predictor: each made once, under a lock,
by the first worker) and seeds the first generation with structured candidates
(:func:`enqueue_anchors`). The loop (:mod:`codesign.engine.trials`) suggests
each candidate; :class:`BuiltinTrial` has the child build it from the supernet,
convert, check and measure it, then times it alone on the device (measured
latency), or predicts its latency and times it only if it could enter the
front (hybrid).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, TextIO

import optuna
from optuna.trial import TrialState
from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.engine.estimates import DataShape
from codesign.engine.front import builtin_run_info
from codesign.engine.measured import time_file
from codesign.engine.plan import JobContext, Prepared, SearchPlan
from codesign.engine.predictor_stage import predictor_stage, screen_accuracy
from codesign.engine.proposer import Proposer
from codesign.engine.ramscreen import RamScreen
from codesign.engine.screen import Screen, predicted_latency
from codesign.engine.stages import (
    latency_screen,
    measure_references,
    noise_floor,
    quality_report,
    setup_supernet,
)
from codesign.engine.workers import joinable
from codesign.hardware.devicelock import host_work
from codesign.report.table import pareto_table
from codesign.run.directory import RunDir
from codesign.run.measurement import Measurement
from codesign.space.candidate import Candidate
from codesign.space.suggest import FamilySpace, params_of


class BuiltinPlan(SearchPlan):
    """The built-in network family with the run's weight-sharing supernet.

    Args:
        cfg: The search's settings (pre-flighted).
    """

    def __init__(self, cfg: SearchConfig) -> None:
        self.cfg = cfg
        self.study: optuna.Study | None = None

    def identity(self) -> dict[str, Any]:
        """The settings a resumed run must match."""
        return self.cfg.identity()

    def joinable(self) -> dict[str, Any]:
        """What a joining worker rebuilds the settings from."""
        return joinable(self.cfg)

    def start(self, study: optuna.Study, out: TextIO) -> None:
        """Seed a new study's first generation (see :func:`enqueue_anchors`)."""
        if not study.get_trials(deepcopy=False):
            enqueue_anchors(study, self.cfg)

    def prepare(self, ctx: JobContext) -> Prepared:
        """What every worker needs before the trials; the first one makes it, the others load it."""
        cfg, coord, child, run, out = self.cfg, ctx.coord, ctx.child, ctx.run, ctx.out
        self.study = ctx.study
        wait = "waiting for another worker to {}"
        data = ctx.data
        shape = DataShape(len(data.y_train), data.channels, data.num_classes)
        with coord.file_lock("supernet", wait.format("train the supernet")), \
                host_work(cfg.profile_spec.remote):
            train_s = setup_supernet(child, cfg, run, out, shape)
        with coord.file_lock("quality", wait.format("finish the quality report")):
            quality = quality_report(child, cfg, run, out, shape, train_s)
        with coord.file_lock("references", wait.format("measure the references")):
            references = measure_references(child, cfg, run, out, shape, train_s)
            noise_floor(child, run, references, cfg.profile_spec, out)  # none: no references
        screen = latency_screen(cfg, data, child, out)
        with coord.file_lock("predictor", wait.format("train the accuracy predictor")):
            predictor = predictor_stage(child, cfg, run, out, ctx.budget.left_s())
        proposer = None
        if predictor is not None and screen is not None:
            screened = screen_accuracy(child) if cfg.predictor_screen_samples else None
            proposer = Proposer(predictor, screen, cfg, ctx.study, out, run.root, screened)
        evaluate = BuiltinTrial(child, cfg, run, ctx.study, screen, proposer)
        ram = None if cfg.max_ram_kb is None else RamScreen(
            cfg.space_spec, cfg.max_ram_kb, data.num_classes, data.channels)
        return Prepared(FamilySpace(cfg.space_spec, cfg.layer_choices()), evaluate, proposer,
                        references, quality, screen=ram)

    def run_info(self, trials: list[Any]) -> dict[str, Any]:
        """What ``pareto.json`` records of the run (with the candidates RAM skipped)."""
        info = builtin_run_info(self.cfg, len(trials), trials)
        if self.cfg.max_ram_kb is not None and self.study is not None:
            info["skipped_by_ram_estimate"] = sum(
                1 for t in self.study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
                if "skipped" in t.user_attrs)
        return info

    def table(self, doc: dict[str, Any]) -> str:
        """The front as a terminal table."""
        return pareto_table(doc)


@dataclass
class BuiltinTrial:
    """Evaluates a built-in candidate for the loop (see :data:`codesign.engine.trials.Evaluate`).

    Attributes:
        child: The evaluation child (set up with the run's supernet).
        cfg: The search's settings.
        run: The run directory (trial models go to its cache).
        study: The study (hybrid latency compares with its finished trials).
        screen: The latency predictor (None without a latency model).
        proposer: The accuracy predictor's proposer (None unless predicted accuracy).
    """

    child: EvalChild
    cfg: SearchConfig
    run: RunDir
    study: optuna.Study
    screen: Screen | None = None
    proposer: Proposer | None = None

    def __call__(self, trial: optuna.Trial, cand: Candidate, bar: tqdm) -> tuple[float, ...]:
        """Evaluate ``cand`` for ``trial``; set its attributes; return its objective values.

        Raises:
            TrialFailure: If the candidate cannot be built, converted or measured.
            DeviceUnavailable: If the device dropped out.
        """
        cfg, child = self.cfg, self.child
        t0 = time.perf_counter()
        path = str(self.run.trial_model(trial.number))
        trial.set_user_attr("candidate", cand.to_dict())
        timing = self.screen is None or cfg.latency == "measured"
        local = not cfg.profile_spec.remote
        with host_work(cfg.profile_spec.remote):  # off the cores while another worker times
            m = Measurement.from_attrs(child.call(
                "evaluate", candidate=cand.to_dict(), model_path=path,
                timing=timing and not local))
        if timing and local:  # timed alone: the child takes the device's lock exclusively
            t1 = time.perf_counter()
            m = m.timed(time_file(child, path), time.perf_counter() - t1)
        if self.proposer is not None:
            trial.set_user_attr("accuracy_predicted", self.proposer.predictor.predict(cand))
        if self.screen is not None:
            predicted = self.screen.predict(cand)
            trial.set_user_attr("latency_predicted_ms", predicted)
            if not timing:
                m = self._latency_by_prediction(m, predicted, path)
        m = replace(m, times={**m.times, "total": round(time.perf_counter() - t0, 4)})
        m.record(trial, cfg.budgets())
        return m.objective_values(cfg.objectives)

    def _latency_by_prediction(self, m: Measurement, predicted: float, path: str) -> Measurement:
        """Time the candidate if it could enter the front (hybrid), else keep the prediction."""
        assert self.screen is not None
        if self.cfg.latency == "hybrid":
            return self.screen.hybrid(m, predicted, self.study, self.cfg,
                                      lambda: time_file(self.child, path))
        return m.timed(predicted_latency(predicted))


def _middle(values: tuple[int, ...]) -> int:
    """The middle of sorted choices (the lower of two)."""
    return sorted(values)[(len(values) - 1) // 2]


def _partway(shallow: tuple[int, ...], deep: tuple[int, ...], share: float) -> tuple[int, ...]:
    """Depths with ``share`` of the blocks that ``deep`` adds to ``shallow``, early stages first.

    The blocks are handed out one per stage in turn, so the network grows
    evenly rather than stage after stage.
    """
    extra = round(share * sum(d - s for s, d in zip(shallow, deep, strict=True)))
    depths = list(shallow)
    while extra > 0:
        for i, top in enumerate(deep):
            if extra > 0 and depths[i] < top:
                depths[i] += 1
                extra -= 1
    return tuple(depths)


def enqueue_anchors(study: optuna.Study, cfg: SearchConfig) -> None:
    """Start the first generation with a few structured candidates spread over the space.

    A random per-layer precision mix almost never gives most layers one
    precision, yet networks the delegate runs whole are the fast ones: on
    XNNPACK an int16x8 or int4 layer falls back to built-in kernels and splits
    the delegate's graph. So part of the first generation is seeded, in this
    order: the fastest int8 network (most pruned, shallowest, lowest
    resolution); the most accurate one (no pruning, deepest, highest
    resolution) in float32, so the front reaches what the space holds (the
    maximal float32 network is also a reference; as a trial it is on the
    front, fine-tuned, rather than only beside it); an int8 network of middle
    size; the largest in int8; the six other corners of
    the cube of pruning, depth and resolution that the first two span, all
    int8, those at the lowest resolution first, with networks a third and
    two thirds of the way from the shallowest to the deepest after the
    lowest resolution's corners; the middle network with its
    first and last layers at float16 (the usual place for more precision); a
    float32 network of middle size; then int8 at the other pruning levels.
    The first three span the latency range (the fastest with the smallest
    depthwise kernel, the largest with the largest, the others the middle
    one; the corners named after the largest take its kernel, those named
    after the fastest take its), so even a search stopped early has a front
    to show; the corners give a short search points between them, where a
    random candidate seldom lands (on the tiny space with digits, the largest
    int8 network dominated 15 of 20 trials of a one-minute search, and the
    same network at the lowest resolution dominated it in turn, since digits
    are 8 px images; where networks are so small that the runtime's fixed
    cost per layer sets their latency, depth is what spreads them). A
    network that a small space makes equal to one already seeded is seeded
    once. Each prunes its groups unevenly around its
    level (one level up or down, seeded). At least two members of the first
    generation stay random.
    """
    import numpy as np

    from codesign.run.study import population_size

    space = cfg.space_spec
    choices = cfg.layer_choices()
    rng = np.random.default_rng(cfg.seed + 104729)
    ratios = sorted(space.prune_ratios)
    top = len(ratios) - 1
    mid = top // 2 if top > 1 else min(1, top)
    shallow = tuple(st.min_depth for st in space.stages)
    middle = tuple((st.min_depth + st.max_depth + 1) // 2 for st in space.stages)
    deep = tuple(st.max_depth for st in space.stages)
    res = sorted(space.resolutions)
    low, centre, high = res[0], res[(len(res) - 1) // 2], res[-1]
    plan = [("int8", top, shallow, low, False, "fastest"),
            ("float32", 0, deep, high, False, "largest"),
            ("int8", mid, middle, centre, False, "middle"),
            ("int8", 0, deep, high, False, "largest"),
            ("int8", 0, deep, low, False, "largest at the lowest resolution"),
            ("int8", top, deep, low, False, "largest pruned, at the lowest resolution"),
            ("int8", 0, shallow, low, False, "shallowest, at the lowest resolution"),
            ("int8", 0, _partway(shallow, deep, 2 / 3), low, False,
             "two thirds deep, at the lowest resolution"),
            ("int8", 0, _partway(shallow, deep, 1 / 3), low, False,
             "a third deep, at the lowest resolution"),
            ("int8", top, deep, high, False, "largest pruned"),
            ("int8", 0, shallow, high, False, "largest made shallow"),
            ("int8", top, shallow, high, False, "fastest at the highest resolution"),
            ("int8", mid, middle, high, True, "middle"),
            ("float32", mid, middle, high, False, "middle")]
    plan += [("int8", lv, middle, high, False, "middle") for lv in range(1, top)
             if lv != mid]
    names = space.layer_names()
    room = max(0, population_size(cfg.trials) - 2)
    seen: set[tuple[Any, ...]] = set()
    for precision, level, depths, resolution, edges, size in plan:
        if len(seen) == room:
            break
        layer_prec = {n: precision for n in names}
        if edges:
            layer_prec[names[0]] = layer_prec[names[-1]] = "float16"
        if any(p not in choices[n] for n, p in layer_prec.items()):
            continue
        jitter = 0 if level in (0, top) and size != "middle" else 1
        prune = {
            g: ratios[int(np.clip(level + rng.integers(-jitter, jitter + 1), 0, top))]
            for g in space.group_sizes()
        }
        pick = min if size.startswith("fastest") else max if size.startswith("largest") \
            else _middle
        cand = Candidate.make(resolution, depths, prune, layer_prec,
                              space.kernel_genes(pick(space.kernels)))
        key = tuple(sorted(params_of(cand).items()))
        if key in seen:  # a small space makes some of these the same network
            continue
        seen.add(key)
        label = (f"{precision}{' + float16 edges' if edges else ''}, {size}, "
                 f"prune ~{ratios[level]}")
        study.enqueue_trial(params_of(cand), user_attrs={"anchor": label})
