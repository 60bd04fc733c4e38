"""The search space: candidates, sub-network structure, seeded suggestion."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from codesign.errors import CodesignError
from codesign.search.study import make_sampler
from codesign.space import Candidate, candidate_from_params, get_space, suggest_candidate
from codesign.space.family import scale_channels


def test_candidate_round_trip() -> None:
    c = Candidate(resolution=24, depths=(1, 2, 3), width=0.5, precision="int8")
    assert Candidate.from_dict(c.to_dict()) == c
    with pytest.raises(CodesignError):
        Candidate.from_dict({"resolution": 24})
    with pytest.raises(CodesignError):
        Candidate.from_dict({**c.to_dict(), "precision": "int3"})


def test_candidate_is_frozen() -> None:
    c = Candidate(resolution=24, depths=(1,), width=0.5, precision="int8")
    with pytest.raises(AttributeError):
        c.width = 1.0  # type: ignore[misc]


def test_default_space_shape() -> None:
    space = get_space("default")
    assert sum(st.max_depth for st in space.stages) >= 10 and len(space.stages) >= 3
    assert max(space.resolutions) == 32
    names = space.layer_names()
    assert len(names) == len(set(names))
    assert names[0] == "stem_conv" and names[-1] == "classifier"


def test_residual_blocks_share_the_stage_group() -> None:
    space = get_space("default")
    for bp in space.blocks():
        if bp.residual:
            assert bp.in_group == bp.out_group == f"s{bp.stage}"


def test_subnet_scales_channels_and_checks_membership() -> None:
    space = get_space("tiny")
    sub = space.subnet(Candidate(16, (1, 1, 2), 0.5, "int8"))
    assert sub.channels["s3"] == scale_channels(24, 0.5) == 12
    assert set(sub.precision.values()) == {"int8"}
    assert "s2b2_dw" not in sub.precision and "s3b2_dw" in sub.precision
    with pytest.raises(CodesignError, match="resolution 99"):
        space.subnet(Candidate(99, (1, 1, 2), 0.5, "int8"))
    with pytest.raises(CodesignError, match="depth 5"):
        space.subnet(Candidate(16, (1, 5, 2), 0.5, "int8"))


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
    with pytest.raises(CodesignError):
        candidate_from_params({"resolution": 24}, space)
