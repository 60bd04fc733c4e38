"""The search space: candidates, sub-network structure, seeded suggestion."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import optuna
import pytest

from codesign.errors import CodesignError
from codesign.run.study import make_sampler
from codesign.space import Candidate, candidate_from_params, get_space, suggest_candidate
from codesign.space.family import kept_channels
from codesign.space.suggest import params_of


def test_candidate_round_trip() -> None:
    space = get_space("tiny")
    c = space.random_candidate(np.random.default_rng(0), {n: ("int8", "int4")
                                                          for n in space.layer_names()})
    assert Candidate.from_dict(c.to_dict()) == c
    assert Candidate.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(CodesignError):
        Candidate.from_dict({"resolution": 24})
    with pytest.raises(CodesignError):
        Candidate.from_dict({**c.to_dict(), "precision": {"stem_conv": "int3"}})


def test_one_candidate_type_holds_every_spaces_record() -> None:
    # a HyperModel's and a trained model's candidates: the same type, their own records
    hyper = Candidate.of_graph(32, {"g2": 0.5, "g1": 0.0}, {"conv": "int8", "dense": "float16"},
                               hp={"units": 16}, hypermodel="m.py:Build",
                               answers={"hp/units": 16}, build_s=0.2)
    assert hyper.to_dict() == {"resolution": 32, "hp": {"units": 16},
                               "prune": {"g2": 0.5, "g1": 0.0},
                               "precision": {"conv": "int8", "dense": "float16"},
                               "hypermodel": "m.py:Build"}
    assert list(hyper.to_dict()["prune"]) == ["g2", "g1"]  # graph order, as before
    assert Candidate.from_dict(hyper.to_dict()) == hyper and hyper.answers_map == {"hp/units": 16}
    trained = Candidate.of_graph(24, {}, {"conv": "int8"}, model="net.keras")
    assert trained.to_dict() == {"resolution": 24, "prune": {}, "precision": {"conv": "int8"},
                                 "model": "net.keras"}
    assert Candidate.from_dict(json.loads(trained.to_json())) == trained
    assert len({hyper, trained, Candidate.from_dict(hyper.to_dict())}) == 2


def test_candidate_is_frozen_and_hashable() -> None:
    c = get_space("tiny").max_candidate()
    with pytest.raises(AttributeError):
        c.resolution = 1  # type: ignore[misc]
    assert len({c, get_space("tiny").max_candidate()}) == 1


def test_default_space_shape() -> None:
    space = get_space("default")
    assert sum(st.max_depth for st in space.stages) >= 10 and len(space.stages) >= 3
    assert max(space.resolutions) == 32
    names = space.layer_names()
    assert len(names) == len(set(names))
    assert names[0] == "stem_conv" and names[-1] == "classifier"
    assert set(space.precisions) == {"float32", "float16", "int8", "int16x8", "int4"}


def test_residual_blocks_share_the_stage_group() -> None:
    space = get_space("default")
    groups = space.group_layers()
    for bp in space.blocks():
        if bp.residual:
            assert bp.in_group == bp.out_group == f"s{bp.stage}_project"
    assert groups["s3_project"] == ["s3b1_project", "s3b2_project", "s3b3_project"]
    # every conv layer's output belongs to exactly one group
    owned = [name for layers in groups.values() for name in layers]
    convs = [n for n, k in space.layer_kinds().items() if k == "conv"]
    assert sorted(owned) == sorted(convs)


def test_subnet_prunes_per_group_and_checks_membership() -> None:
    space = get_space("default")
    prune = {g: 0.0 for g in space.group_sizes()}
    prune.update({"s3_project": 0.5, "s2b1_expand": 0.75})
    kernel = space.kernel_genes(3)
    cand = Candidate.make(24, (1, 1, 2, 1), prune, {n: "int8" for n in space.layer_names()},
                          kernel)
    sub = space.subnet(cand)
    assert sub.channels["s3_project"] == kept_channels(40, 0.5) == 20
    assert sub.channels["s2b1_expand"] == kept_channels(64, 0.75) == 16
    assert sub.channels["stem_conv"] == 16
    assert set(sub.precision.values()) == {"int8"}
    assert "s2b2_dw" not in sub.precision and "s3b2_dw" in sub.precision
    with pytest.raises(CodesignError, match="resolution 99"):
        space.subnet(Candidate.make(99, (1, 1, 2, 1), prune, cand.precision_map, kernel))
    with pytest.raises(CodesignError, match="depth 5"):
        space.subnet(Candidate.make(24, (1, 5, 2, 1), prune, cand.precision_map, kernel))
    with pytest.raises(CodesignError, match="prune ratios"):
        space.subnet(Candidate.make(24, (1, 1, 2, 1), {**prune, "stem_conv": 0.3},
                                    cand.precision_map, kernel))
    with pytest.raises(CodesignError, match="kernel blocks"):
        space.subnet(Candidate.make(24, (1, 1, 2, 1), prune, cand.precision_map))
    with pytest.raises(CodesignError, match="kernels of"):
        space.subnet(Candidate.make(24, (1, 1, 2, 1), prune, cand.precision_map,
                                    {**kernel, "s2b1": 9}))


def test_every_per_layer_parameter_is_suggested_in_every_trial() -> None:
    space = get_space("default")
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({f"stage{s}_depth": 1 for s in range(1, len(space.stages) + 1)})
    trial = study.ask()
    cand = suggest_candidate(trial, space)
    assert set(cand.depths) == {1}
    expected = {f"prune/{g}" for g in space.group_sizes()} | {
        f"precision/{n}" for n in space.layer_names()
    } | {f"kernel/{bp.name}" for bp in space.blocks()}
    assert expected <= set(trial.params)
    assert set(cand.kernel_map.values()) <= {3, 5, 7} and len(cand.kernel_map) == 11
    assert "precision/s3b3_dw" in trial.params  # a block this candidate does not use
    assert "s3b3_dw" not in space.subnet(cand).precision


def test_precision_choices_are_restricted_per_layer() -> None:
    space = get_space("tiny")
    choices = {n: ("float32",) for n in space.layer_names()}
    choices["classifier"] = ("int8",)
    study = optuna.create_study(directions=["maximize", "minimize"])
    for _ in range(5):
        trial = study.ask()
        cand = suggest_candidate(trial, space, choices)
        assert cand.precision_map["classifier"] == "int8"
        assert cand.precision_map["stem_conv"] == "float32"
        study.tell(trial, [0.5, 1.0])


def _propose(seed: int, n: int) -> list[Candidate]:
    space = get_space("default")
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=make_sampler("nsga2", seed, 40)
    )
    out = []
    rng = np.random.default_rng(0)
    for _ in range(n):
        trial = study.ask()
        cand = suggest_candidate(trial, space)
        out.append(cand)
        study.tell(trial, [float(rng.random()), float(rng.random())])
    return out


def test_same_seed_proposes_same_candidates() -> None:
    a, b = _propose(3, 25), _propose(3, 25)
    assert a == b
    assert a != _propose(4, 25)


def test_params_decode_back_to_candidate() -> None:
    space = get_space("default")
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    cand = suggest_candidate(trial, space)
    assert candidate_from_params(trial.params, space) == cand
    assert candidate_from_params(params_of(cand), space) == cand
    assert params_of(cand)["kernel/s2b1"] == cand.kernel_map["s2b1"]
    with pytest.raises(CodesignError):
        candidate_from_params({"resolution": 24}, space)
    one = replace(space, kernels=(3,))  # a single-kernel space (older runs) has no kernel gene
    cand = suggest_candidate(study.ask(), one)
    assert cand.kernel is None and not any(p.startswith("kernel/") for p in params_of(cand))
    assert "kernel" not in cand.to_dict() and candidate_from_params(params_of(cand), one) == cand
    assert set(one.subnet(cand).kernels.values()) == {3}


def test_kernel_genes_round_trip_and_anchor_the_extremes() -> None:
    space = get_space("default")
    rng = np.random.default_rng(0)
    cands = [space.random_candidate(rng) for _ in range(20)]
    assert {k for c in cands for k in c.kernel_map.values()} == {3, 5, 7}
    for c in cands:
        assert Candidate.from_dict(json.loads(c.to_json())) == c
        assert space.subnet(c).kernels == c.kernel_map
    assert set(space.max_candidate().kernel_map.values()) == {7}
    assert set(space.min_candidate().kernel_map.values()) == {3}
    with pytest.raises(CodesignError, match="kernel size"):
        Candidate.from_dict({**cands[0].to_dict(), "kernel": {"s1b1": 3.5}})


def test_the_seeded_first_generation_spans_depth_at_the_lowest_resolution(tmp_path) -> None:
    from codesign.config import SearchConfig
    from codesign.engine.builtin import enqueue_anchors

    study = optuna.create_study(directions=["maximize", "minimize"])
    enqueue_anchors(study, SearchConfig(out=tmp_path / "run", space="tiny", trials=1000))
    space = get_space("tiny")
    fixed = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    assert len({tuple(sorted(p.items())) for p in fixed}) == len(fixed)  # no network twice
    seeded = [candidate_from_params(p, space) for p in fixed]
    low = min(space.resolutions)
    depths = [c.depths for c in seeded if c.resolution == low]
    assert {(1, 1, 1), (1, 2, 1), (1, 2, 2)} <= set(depths)  # shallow, part way, deep


def test_other_precisions_keep_each_kind_of_candidate_as_it_was_made() -> None:
    """A built-in candidate's layers stay sorted, a graph's stay in graph order."""
    graph = Candidate.of_graph(32, {"g": 0.5}, {"conv_b": "int8", "conv_a": "int8"}, model="m")
    again = graph.with_precisions({"conv_b": "float32", "conv_a": "int4"})
    assert again.precision == (("conv_b", "float32"), ("conv_a", "int4"))
    assert again.model == "m" and again.prune == graph.prune
    built = Candidate.make(24, [1, 1], {"g": 0.0}, {"b": "int8", "a": "int8"})
    assert built.with_precisions({"b": "float32", "a": "int4"}) == Candidate.make(
        24, [1, 1], {"g": 0.0}, {"a": "int4", "b": "float32"})


def test_enqueued_seeds_join_the_first_generation_and_breed() -> None:
    """Optuna's NSGA-II numbers a generation only for trials it samples; seeds must count."""
    import optuna

    from codesign.run.study import join_generation

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.NSGAIISampler(population_size=4, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    for x in (0.9, 1.0):  # two seeds that dominate everything the sampler draws
        study.enqueue_trial({"x": x, "y": 0.0})
    for _ in range(12):
        trial = study.ask()
        join_generation(study, trial)
        x, y = trial.suggest_float("x", 0.0, 1.0), trial.suggest_float("y", 0.0, 1.0)
        study.tell(trial, [x, y + 0.01])
    generation = sampler.get_trial_generation
    trials = study.get_trials(deepcopy=False)
    assert [generation(study, t) for t in trials[:4]] == [0, 0, 0, 0]
    parents = {t.number for t in sampler.get_parent_population(study, 1)}
    assert {0, 1} <= parents  # the seeds are chosen as parents of the next generation
