"""Users' own search spaces (keras-tuner HyperModels): hp, channel groups, pruning, search."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

import codesign  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow or keras_tuner load)
from codesign.hardware.profile import load_profile
from codesign.hyper.encoding import feature_matrix, fit_accuracy_predictor, load_evaluations
from codesign.hyper.load import parse_spec
from codesign.hyper.propose import propose
from codesign.hyper.settings import HyperSettings
from codesign.hyper.suggest import suggest_genes

ROOT = Path(__file__).resolve().parents[1]

CONDITIONAL = '''
import keras_tuner as kt
import tf_keras as keras


class Branchy(kt.HyperModel):
    def __init__(self, num_classes=10, input_channels=1):
        super().__init__()
        self.num_classes, self.channels = num_classes, input_channels

    def build(self, hp):
        kind = hp.Choice("model_type", ["mlp", "cnn"])
        inp = keras.Input((8, 8, self.channels))
        with hp.conditional_scope("model_type", ["mlp"]):
            if kind == "mlp":
                x = keras.layers.Flatten(name="flat")(inp)
                x = keras.layers.Dense(hp.Int("mlp_units", 8, 32, step=8), name="hidden")(x)
        with hp.conditional_scope("model_type", ["cnn"]):
            if kind == "cnn":
                with hp.name_scope("cnn"):
                    x = keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3, name="conv")(inp)
                x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
        extra = hp.Int("extra", 0, 2, parent_name="model_type", parent_values=["cnn"])
        if extra:
            x = keras.layers.Dense(4 * extra, name="extra")(x)
        out = keras.layers.Dense(self.num_classes, name="classifier")(x)
        return keras.Model(inp, out)
'''


def _ctx(path: Path, name: str, spec: Any = None) -> dict[str, Any]:
    spec = spec or parse_spec(f"{path}:{name}", path.parent)
    return {"spec": spec.to_dict(), "data": "digits",
            "seed": 0, "profile": load_profile("xnnpack-1t").path,
            "train": HyperSettings().to_dict()}


def _propose_many(path: Path, name: str, sampler: optuna.samplers.BaseSampler,
                  n: int) -> list[dict[str, Any]]:
    """Ask ``n`` trials of an in-memory study; builds run in this process (no child)."""
    from codesign.hyper.evaluate import HyperHandlers

    handlers, ctx = HyperHandlers(progress=lambda info: None), _ctx(path, name)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    choices = {k: ("float32", "int8") for k in ("conv", "depthwise", "dense")}
    out = []
    for i in range(n):
        trial = study.ask()
        _, built = propose(trial, lambda a: handlers.do_hyper_build(ctx=ctx, answers=a))
        suggest_genes(trial, built["graph"], choices, (0.0, 0.5))
        out.append(dict(trial.params))
        study.tell(trial, [0.5 + 0.01 * i, 1.0 + i])
    return out


def test_conditional_scope_suggests_only_the_active_branch(tmp_path: Path) -> None:
    path = tmp_path / "branchy.py"
    path.write_text(CONDITIONAL)
    proposed = _propose_many(path, "Branchy", optuna.samplers.RandomSampler(seed=3), 8)
    kinds = {p["hp/model_type"] for p in proposed}
    assert kinds == {"mlp", "cnn"}, kinds
    for p in proposed:
        hp = {k for k in p if k.startswith("hp/")}
        if p["hp/model_type"] == "mlp":
            assert hp == {"hp/model_type", "hp/mlp_units"}
            assert "prune/hidden" in p and "precision/hidden" in p
            assert not any("conv" in k for k in p)
        else:
            assert hp == {"hp/model_type", "hp/cnn/filters", "hp/extra"}
            assert "prune/conv" in p and "precision/conv" in p
            assert not any("hidden" in k for k in p)
        assert "prune/classifier" not in p  # the output's channels are the classes
        assert "precision/classifier" in p


def test_python_api_takes_a_hypermodel_instance(tmp_path: Path) -> None:
    import importlib.util

    from codesign.hyper.evaluate import HyperHandlers
    from codesign.hyper.load import as_spec

    path = tmp_path / "branchy_api.py"
    path.write_text(CONDITIONAL)
    mod_spec = importlib.util.spec_from_file_location("branchy_api", path)
    assert mod_spec is not None and mod_spec.loader is not None
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules["branchy_api"] = module  # as an import would (pickle finds the class there)
    mod_spec.loader.exec_module(module)
    spec = as_spec(module.Branchy(num_classes=10))
    assert spec.pickled and spec.name == "Branchy"
    handlers = HyperHandlers(progress=lambda info: None)
    ctx = _ctx(path, "Branchy", spec)
    reply = handlers.do_hyper_build(ctx=ctx, answers={"hp/model_type": "mlp",
                                                      "hp/mlp_units": 16})
    assert reply["hp"] == {"model_type": "mlp", "mlp_units": 16}


def test_same_seed_proposes_the_same_candidates(tmp_path: Path) -> None:
    path = tmp_path / "branchy.py"
    path.write_text(CONDITIONAL)

    def run(seed: int) -> list[dict[str, Any]]:
        return _propose_many(path, "Branchy",
                             optuna.samplers.NSGAIISampler(population_size=4, seed=seed), 6)

    first = run(7)
    assert first == run(7)
    assert first != run(8)


def test_hp_specs_map_keras_tuner_ranges() -> None:
    import keras_tuner as kt

    from codesign.hyper.hp import spec_of

    hp = kt.HyperParameters()
    hp.Int("a", 8, 30, step=8)
    hp.Int("b", 2, 32, step=2, sampling="log")
    hp.Float("c", 1e-4, 1e-1, sampling="log")
    hp.Float("d", 0.0, 0.5, step=0.1)
    hp.Boolean("e")
    specs = {h.name: spec_of(h) for h in hp.space}
    assert specs["a"] == {"name": "a", "type": "int", "low": 8, "high": 24, "step": 8,
                          "log": False}
    assert specs["b"] == {"name": "b", "type": "choice", "values": [2, 4, 8, 16, 32]}
    assert specs["c"]["log"] is True and specs["c"]["step"] is None
    assert specs["d"]["step"] == pytest.approx(0.1)
    assert specs["e"] == {"name": "e", "type": "choice", "values": [False, True]}


def _graph_model() -> Any:
    import tf_keras as keras

    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    y = L.Conv2D(6, 1, name="b_conv1", activation="relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", name="b_dw")(y)
    y = L.Conv2D(8, 1, name="b_conv2")(y)
    x = L.Add(name="b_add")([x, y])
    z = L.Conv2D(4, 1, name="side", activation="relu")(x)
    x = L.Concatenate(name="cat")([x, z])
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(6, name="fc", activation="relu")(x)
    return keras.Model(inp, L.Dense(3, name="classifier")(x))


def test_channel_groups_follow_residuals_and_concatenation() -> None:
    from codesign.hyper.graph import channel_graph

    g = channel_graph(_graph_model())
    groups = {x["name"]: x for x in g.describe()["groups"]}
    assert groups["stem"]["producers"] == ["stem", "b_conv2"]  # tied by the addition
    assert {n for n, x in groups.items() if x["prunable"]} == {"stem", "b_conv1", "side", "fc"}
    assert g.inputs["fc"] == ((("stem", 8), ("side", 4)), 16)  # concatenated, then flattened
    assert [k for _, k in g.precision_layers].count("depthwise") == 1


def test_pruning_removes_dead_channels_exactly() -> None:
    """Channels whose every producer is zero are the least important; removing them is exact."""
    from codesign.hyper.graph import channel_graph
    from codesign.hyper.prune import prune_model

    model = _graph_model()
    rng = np.random.default_rng(0)
    for layer in model.layers:
        layer.set_weights([rng.normal(size=w.shape).astype(np.float32) * 0.3
                           for w in layer.get_weights()])
    bn = model.get_layer("stem_bn")
    gamma, beta, mean, var = bn.get_weights()
    dead = {"stem": [1, 5], "b_conv1": [0, 2, 4], "side": [3, 0], "fc": [2, 3, 4]}
    for name in ("stem", "b_conv2"):
        w = model.get_layer(name).get_weights()
        w[0][..., dead["stem"]] = 0.0
        if len(w) > 1:
            w[1][dead["stem"]] = 0.0
        model.get_layer(name).set_weights(w)
    beta[dead["stem"]], mean[dead["stem"]], var = 0.0, 0.0, np.abs(var) + 0.5
    bn.set_weights([gamma, beta, mean, var])
    for name in ("b_conv1", "side", "fc"):
        w = model.get_layer(name).get_weights()
        w[0][..., dead[name]] = 0.0
        w[1][dead[name]] = 0.0
        model.get_layer(name).set_weights(w)
    dw = model.get_layer("b_dw").get_weights()
    dw[1][dead["b_conv1"]] = 0.0  # a depthwise bias would revive a dead channel
    model.get_layer("b_dw").set_weights(dw)
    x = rng.random((5, 8, 8, 1)).astype(np.float32)
    graph = channel_graph(model)
    ratios = {"stem": 0.25, "b_conv1": 0.5, "side": 0.5, "fc": 0.5}
    narrow, counts = prune_model(model, graph, ratios)
    assert counts == {"stem": 6, "b_conv1": 3, "side": 2, "fc": 3, "classifier": 3}
    assert narrow.get_layer("b_dw").get_weights()[0].shape[2] == 3
    assert narrow.count_params() < model.count_params()
    np.testing.assert_allclose(narrow(x).numpy(), model(x).numpy(), rtol=1e-4, atol=1e-5)


def test_search_process_stays_light_and_exports_a_front(tmp_path: Path) -> None:
    """A user error in build fails only its trial, with the user's own message."""
    path = tmp_path / "flaky.py"
    path.write_text(textwrap.dedent('''
        import keras_tuner as kt
        import tf_keras as keras

        def build(hp):
            if hp.Boolean("explode"):
                raise ValueError("my own message: no model today")
            inp = keras.Input((8, 8, 1))
            x = keras.layers.Conv2D(hp.Choice("filters", [4, 8]), 3, name="conv")(inp)
            x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
            return keras.Model(inp, keras.layers.Dense(10, name="classifier")(x))
    '''))
    out = tmp_path / "run"
    script = textwrap.dedent(f'''
        import sys
        from codesign.cli import main
        code = main(["search", "--hypermodel", "{path}:build", "--trials", "2", "--seed", "1",
                     "--sampler", "random", "--candidate-epochs", "1", "--finetune-epochs", "0",
                     "--no-report", "--out", "{out}"])
        heavy = [m for m in ("tensorflow", "tf_keras", "keras", "keras_tuner") if m in sys.modules]
        print("HEAVY", heavy)
        sys.exit(code)
    ''')
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "HEAVY []" in proc.stdout
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["points"]
    for p in doc["points"]:
        assert (out / p["model"]).is_file() and (out / p["manifest"]).is_file()
        assert p["candidate"]["hp"]["explode"] is False
    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{out / 'study.db'}")
    reasons = [t.user_attrs.get("fail_reason", "") for t in study.trials
               if t.state == optuna.trial.TrialState.FAIL]
    assert reasons, "the seed should propose at least one exploding build"
    assert all("ValueError: my own message: no model today (flaky.py:" in r for r in reasons)
    records = load_evaluations(out)
    assert len(records) == 2
    model, names = fit_accuracy_predictor(records * 3)
    assert model.predict(feature_matrix(records, names)[0]).shape == (2,)


def test_keras3_model_gets_a_one_line_message(tmp_path: Path) -> None:
    path = tmp_path / "k3.py"
    path.write_text(textwrap.dedent('''
        import keras

        def build(hp):
            inp = keras.Input((8, 8, 1))
            x = keras.layers.Flatten()(inp)
            return keras.Model(inp, keras.layers.Dense(hp.Choice("units", [10]))(x))
    '''))
    proc = subprocess.run(
        [sys.executable, "-m", "codesign.cli", "search", "--hypermodel", f"{path}:build",
         "--trials", "1", "--no-report", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert "Keras 3 model" in last and "import tf_keras as keras" in last
    assert "Traceback" not in proc.stderr


def test_a_hypermodel_search_runs_on_two_workers_sharing_a_journal(tmp_path: Path) -> None:
    """The one loop gives a HyperModel search --workers N: the joining worker rebuilds its plan."""
    from codesign.run.directory import RunDir
    from codesign.run.study import load_study
    from tests.conftest import run_cli

    path = tmp_path / "shared_build.py"
    path.write_text(textwrap.dedent('''
        import tf_keras as keras

        def build(hp):
            inp = keras.Input((8, 8, 1))
            x = keras.layers.Conv2D(hp.Choice("filters", [4, 8, 12, 16]), 3, name="conv")(inp)
            x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
            return keras.Model(inp, keras.layers.Dense(10, name="classifier")(x))
    '''))
    out = tmp_path / "run"
    proc = run_cli("search", "--hypermodel", f"{path}:build", "--trials", "5", "--workers", "2",
                   "--seed", "2", "--sampler", "random", "--candidate-epochs", "1",
                   "--finetune-epochs", "0", "--no-report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert (out / "study.journal").is_file() and not (out / "study.db").exists()
    assert "workers: this process and 1 more" in proc.stdout
    joined = (out / "logs" / "worker-2.log").read_text()
    assert "joins" in joined and "completed" in joined, joined[-2000:]
    study = load_study(RunDir(out).storage_url)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 5 and all("hp" in t.user_attrs["candidate"] for t in complete)
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == len(params)  # no candidate evaluated twice
    assert json.loads((out / "pareto.json").read_text())["points"]


def test_a_hypermodel_search_refuses_estimators_in_one_line(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    for flag in (["--latency", "hybrid"], ["--accuracy", "predicted"]):
        proc = run_cli("search", "--hypermodel", "examples/small_cnn.py:SmallCNN", *flag,
                       "--out", str(tmp_path / "run"), timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and flag[0] in proc.stderr
