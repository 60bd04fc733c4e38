"""The accuracy predictor: encoding, both regressors, JSON files, proposals, and the search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codesign.engine.screen import Screen, builtin_chain
from codesign.engine.surrogate import propose
from codesign.errors import CodesignError
from codesign.latency.model import LatencyModel
from codesign.predict.encoding import encode, feature_names
from codesign.predict.predictor import (
    AccuracyPredictor,
    ceiling_tau,
    fidelity,
    kendall,
    meets_target,
    rmse,
    validation_ceiling,
)
from codesign.predict.regressors import MLP, Boosted, from_dict
from codesign.space import get_space
from codesign.space.candidate import PRECISIONS, Candidate
from codesign.space.suggest import FamilySpace
from tests.conftest import TINY, run_cli


def test_encoding_reads_depth_channels_and_precision() -> None:
    space = get_space("default")
    top = space.max_candidate("int8")
    vec = encode(space, top)
    names = feature_names(space)
    assert len(vec) == len(names) and vec[names.index("resolution")] == 1.0
    assert vec[names.index("kept/s2b1_expand")] == 1.0 and vec[names.index("int8/s2b1_dw")] == 1
    shallow = Candidate.make(min(space.resolutions), [1] * len(space.stages),
                             {g: 0.5 for g in space.group_sizes()}, top.precision_map,
                             top.kernel_map)
    v2 = encode(space, shallow)
    assert v2[names.index("resolution")] == 0.0
    assert v2[names.index("kept/s2b1_expand")] == 0.5
    absent = [i for i, n in enumerate(names) if n.endswith("/s2b2_dw")]
    assert all(v2[i] == 0 for i in absent)  # a block the candidate does not have
    assert vec[names.index("kernel/s2b1")] == 1.0 and v2[names.index("kernel/s2b2")] == 0.0
    small = Candidate.make(top.resolution, top.depths, top.prune_map, top.precision_map,
                           space.kernel_genes(3))
    assert encode(space, small)[names.index("kernel/s2b1")] == pytest.approx(3 / 7)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, 12))
    y = 0.9 - 0.3 * (x[:, 0] - 0.5) ** 2 + 0.1 * x[:, 1] * x[:, 2] + 0.03 * x[:, 3]
    return x, y


def test_both_regressors_learn_and_round_trip_through_json() -> None:
    x, y = _synthetic(400, 0)
    xt, yt = _synthetic(200, 1)
    mean_rmse = float(np.sqrt(np.mean((yt - y.mean()) ** 2)))
    for reg in (MLP(seed=0, members=2), Boosted(seed=0)):
        reg.fit(x, y)
        pred = reg.predict(xt)
        assert np.sqrt(np.mean((pred - yt) ** 2)) < 0.5 * mean_rmse, type(reg).__name__
        again = from_dict(json.loads(json.dumps(reg.to_dict())))
        np.testing.assert_allclose(again.predict(xt), pred, rtol=1e-9, atol=1e-12)


def test_exported_trees_predict_like_scikit_learn() -> None:
    from sklearn.ensemble import GradientBoostingRegressor

    x, y = _synthetic(300, 2)
    ours = Boosted(seed=3).fit(x, y)
    theirs = GradientBoostingRegressor(n_estimators=300, learning_rate=0.05, max_depth=3,
                                       subsample=0.8, random_state=3).fit(x, y)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x), atol=1e-9)


def test_transfer_moves_the_predictions_toward_new_data() -> None:
    x, y = _synthetic(300, 4)
    shifted = y - 0.1 * x[:, 5]  # the quantized accuracies: lower where feature 5 is high
    for reg in (MLP(seed=0, members=2), Boosted(seed=0)):
        reg.fit(x, y)
        before = np.mean(np.abs(reg.predict(x[:100]) - shifted[:100]))
        reg.transfer(x[100:200], shifted[100:200])
        after = np.mean(np.abs(reg.predict(x[:100]) - shifted[:100]))
        assert after < before, type(reg).__name__


def test_fidelity_baselines_and_target() -> None:
    truth = np.linspace(0.9, 0.99, 20)
    f = fidelity(truth + 0.001, truth, (truth, truth[::-1]), float(truth.mean()))
    assert f["predictor"]["kendall_tau"] == pytest.approx(1.0)
    assert f["second_evaluation"]["kendall_tau"] == pytest.approx(-1.0)
    assert meets_target(f)
    assert not meets_target(fidelity(np.full(20, truth.mean()), truth, (truth, truth),
                                     truth.mean()))


def test_validation_halves_bound_what_a_predictor_can_reach() -> None:
    """Accuracies on a small validation set: the halves' agreement sets the ceiling."""
    rng = np.random.default_rng(0)
    true = rng.uniform(0.90, 0.98, 400)
    n_img = 300  # images per half
    halves = np.stack([rng.binomial(n_img, true) / n_img for _ in range(2)], axis=1)
    measured = halves.mean(axis=1)
    ceiling = validation_ceiling(halves, measured)
    # the estimate agrees with what the true accuracy itself scores against the measurement
    assert ceiling["ceiling_kendall_tau"] == pytest.approx(kendall(true, measured), abs=0.05)
    assert ceiling["ceiling_rmse"] == pytest.approx(rmse(true, measured), rel=0.2)
    assert ceiling["kendall_tau"] < ceiling["ceiling_kendall_tau"] < 1.0
    # a second evaluation on the same images would not show that noise
    f = fidelity(true, measured, (measured, measured + 1e-4), float(measured.mean()), halves)
    assert ceiling_tau(f) == pytest.approx(ceiling["ceiling_kendall_tau"])
    assert meets_target(f)  # the true accuracy is as good as any predictor can be
    shuffled = rng.permutation(true)
    assert not meets_target(fidelity(shuffled, measured, (measured, measured),
                                     float(measured.mean()), halves))


def test_a_predictor_file_is_for_one_space(tmp_path: Path) -> None:
    space = get_space("tiny")
    x, y = _synthetic(50, 5)
    reg = Boosted().fit(np.zeros((50, len(feature_names(space)))), y)
    AccuracyPredictor(space, reg, {"chosen": "boosted"}).save(tmp_path / "p.json")
    assert AccuracyPredictor.load(tmp_path / "p.json", space).meta["chosen"] == "boosted"
    with pytest.raises(CodesignError, match="another space"):
        AccuracyPredictor.load(tmp_path / "p.json", get_space("default"))


def test_proposals_come_off_the_predicted_front() -> None:
    """A real fitted predictor (accuracy grows with kept channels) and a latency model."""
    space = get_space("tiny")
    rng = np.random.default_rng(0)
    choices = {n: PRECISIONS[:3] for n in space.layer_names()}
    cands = [space.random_candidate(rng, choices) for _ in range(200)]
    x = np.stack([encode(space, c) for c in cands])
    kept = [i for i, n in enumerate(feature_names(space)) if n.startswith("kept/")]
    y = 0.5 + 0.4 * x[:, kept].mean(axis=1)
    predictor = AccuracyPredictor(space, Boosted().fit(x, y), {})
    latency = LatencyModel({}, {"const": 0.005, "pw:float32:macs": 0.01, "pw:int8:macs": 0.004,
                                "dw3:float32:out": 0.001, "stem:float32:macs": 0.01})
    screen = Screen(latency, builtin_chain(space, 10, 1), type("P", (), {"resolver": "builtin"})())
    seen = {cands[0].to_json()}
    prop = propose(predictor, screen, FamilySpace(space, choices), 6, 400, 0, exclude=seen)
    assert len(prop.candidates) == 6 and prop.inner_trials == 400
    lat = [p[1] for p in prop.predicted]
    assert lat == sorted(lat)
    assert all(c.to_json() not in seen for c in prop.candidates)
    budget = sorted(lat)[2]
    capped = propose(predictor, screen, FamilySpace(space, choices), 4, 400, 0,
                     max_latency_ms=budget)
    assert all(p[1] <= budget for p in capped.predicted)


@pytest.mark.e2e
@pytest.mark.slow  # predictor samples, two regressors, a search and its resume: minutes
def test_predictor_driven_search(built: Path, seeded_run: Path) -> None:
    args = ["search", "--data", "digits", *TINY, "--finetune-epochs", "0", "--trials", "8",
            "--accuracy", "hybrid", "--predictor-float-samples", "30",
            "--predictor-quant-samples", "10", "--predictor-screen-samples", "20",
            "--inner-trials", "300", "--out", str(seeded_run)]
    proc = run_cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy predictor:" in proc.stdout and "evaluated again (n=" in proc.stdout
    assert "a perfect predictor reaches about tau" in proc.stdout
    assert "predictor round 1:" in proc.stdout
    meta = json.loads((seeded_run / "predictor_fidelity.json").read_text())
    assert set(meta["fidelity"]) == {"mlp", "boosted"} and meta["chosen"] in meta["fidelity"]
    for part in ("float", "quantized"):
        assert set(meta["fidelity"][meta["chosen"]][part]) == {
            "n", "predictor", "mean", "second_evaluation", "validation_halves"}
    # the screened samples trained it, and the converted ones measured the screen itself
    screen = meta["screen"]
    assert screen["n"] >= 16 and screen["against_converted"]["n"] >= 8
    assert "screened quantized samples track the converted ones" in proc.stdout
    import optuna

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{seeded_run / 'study.db'}")
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 8 and any("proposal_round" in t.user_attrs for t in done)
    # proposals were shortlisted off the predicted front and screened before they were queued
    assert "screened off the predicted front" in proc.stdout
    screened = [t for t in done if "screened_accuracy" in t.user_attrs]
    assert screened and all(0 < t.user_attrs["screened_accuracy"] <= 1 for t in screened)
    assert all("accuracy_predicted" in t.user_attrs for t in done)
    stamp = (seeded_run / "predictor.json").stat().st_mtime_ns
    # what hybrid mode learnt from finished trials is saved with their numbers ...
    transfer = json.loads((seeded_run / "predictor_transfer.json").read_text())
    learned = transfer["meta"]["learned_trials"]
    assert len(learned) >= 4 and set(learned) <= {t.number for t in done}
    proc = run_cli(*[a if a != "8" else "10" for a in args])  # resume with more trials
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (seeded_run / "predictor.json").stat().st_mtime_ns == stamp  # reused, not retrained
    # ... and a resumed run continues from it instead of the predictor as first trained
    assert f"continuing from what it learnt of {len(learned)} finished trials" in proc.stdout
    again = json.loads((seeded_run / "predictor_transfer.json").read_text())
    assert set(learned) <= set(again["meta"]["learned_trials"])


def test_what_hybrid_learns_is_saved_and_a_resume_continues_from_it(tmp_path: Path) -> None:
    """A real predictor learns from finished trials of a real (in-memory) study, twice."""
    import io

    import optuna

    from codesign.config import SearchConfig
    from codesign.engine.proposer import LEARN_MIN, TRANSFER_FILE, Proposer

    space = get_space("tiny")
    rng = np.random.default_rng(1)
    cands = [space.random_candidate(rng) for _ in range(40)]
    x = np.stack([encode(space, c) for c in cands])
    y = 0.5 + 0.4 * rng.random(len(cands))

    def trained() -> AccuracyPredictor:
        return AccuracyPredictor(space, Boosted().fit(x[:30], y[:30]), {"settings": {"n": 30}})

    screen = Screen(LatencyModel({}, {"const": 0.005}), builtin_chain(space, 10, 1),
                    type("P", (), {"resolver": "builtin"})())
    cfg = SearchConfig(out=tmp_path, space="tiny", accuracy="hybrid")
    study = optuna.create_study(directions=["maximize"])
    first = Proposer(trained(), screen, cfg, study, io.StringIO(), tmp_path)
    for i in range(30, 30 + LEARN_MIN + 1):  # a round of LEARN_MIN, then one more
        trial = study.ask()
        trial.set_user_attr("candidate", cands[i].to_dict())
        trial.set_user_attr("val_accuracy", float(y[i]))
        study.tell(trial, float(y[i]))
        first.learn(trial)
    saved = json.loads((tmp_path / TRANSFER_FILE).read_text())
    assert saved["meta"]["learned_trials"] == list(range(LEARN_MIN))
    assert [n for n, _, _ in first.fresh] == [LEARN_MIN]
    moved = first.predictor.predict_many(cands[:30])
    assert not np.allclose(moved, trained().predict_many(cands[:30]))  # it did learn

    out = io.StringIO()
    resumed = Proposer(trained(), screen, cfg, study, out, tmp_path)
    assert f"continuing from what it learnt of {LEARN_MIN} finished trials" in out.getvalue()
    assert np.allclose(resumed.predictor.predict_many(cands[:30]), moved)
    assert [n for n, _, _ in resumed.fresh] == [LEARN_MIN]  # finished since: learnt next
    other = AccuracyPredictor(space, Boosted().fit(x[:30], y[:30]), {"settings": {"n": 31}})
    retrained = Proposer(other, screen, cfg, study, io.StringIO(), tmp_path)
    assert retrained.predictor is other  # another predictor's transfer is not applied
    assert [n for n, _, _ in retrained.fresh] == list(range(LEARN_MIN + 1))
