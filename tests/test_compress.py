"""Compressing a user's own trained model: ``codesign search --model`` end to end, real parts.

The module trains a small Keras 3 MobileNetV2-style model (with its own
``Rescaling``; ``examples/trained_models.py``) on an RGB npz it makes, saves
it as ``.keras``, and searches it for a few trials: references, a front whose
files load and export, a point faster than the original float32,
``--max-accuracy-drop`` against the original's float32 ``.tflite`` and a
named validation split; and every bad input stops in one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import codesign  # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow loads)
from codesign.compress.inputs import diagnose, input_map, near_chance
from codesign.config import TRAINED_FINETUNE_EPOCHS
from examples.trained_models import mobilenet_v2_style, resnet_style
from tests.conftest import ROOT, run_cli

CLASSES = 4


def rgb_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """32x32 RGB uint8 images: class k < 3 has channel k brighter; each class a bright quadrant."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    x = rng.uniform(0, 150, (n, 32, 32, 3))
    for i, label in enumerate(y):
        if label < 3:
            x[i, :, :, label] += 80
        r, c = (label // 2) * 16, (label % 2) * 16
        x[i, r:r + 8, c:c + 8, :] += 25
    return np.clip(x, 0, 255).astype("uint8"), y.astype("int64")


def save_rgb_data(root: Path, n_train: int) -> tuple[tuple[np.ndarray, np.ndarray],
                                                     tuple[np.ndarray, np.ndarray]]:
    """Train (seed 0) and 200 test (seed 1) images, saved as ``root / "d.npz"``."""
    (x, y), (xt, yt) = rgb_images(n_train, 0), rgb_images(200, 1)
    np.savez(root / "d.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    return (x, y), (xt, yt)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The data (carved and named validation), the trained ``.keras`` model, bad inputs."""
    root = tmp_path_factory.mktemp("compress")
    (x, y), (xt, yt) = save_rgb_data(root, 800)
    xv, yv = rgb_images(200, 2)
    np.savez(root / "dval.npz", x_train=x, y_train=y, x_val=xv, y_val=yv, x_test=xt, y_test=yt)
    model = train_mobilenet((x, y), 6, root / "m.keras")
    assert model.evaluate(xt, yt, verbose=0)[1] > 0.9  # the test's model really learned
    paths = {"root": root, "data": root / "d.npz", "dval": root / "dval.npz",
             "model": root / "m.keras"}
    return paths


def train_mobilenet(train: tuple[np.ndarray, np.ndarray], epochs: int, path: Path) -> Any:
    """The Keras 3 MobileNetV2-style model trained on ``train`` (seeded), saved to ``path``."""
    import keras

    keras.utils.set_random_seed(0)
    model = mobilenet_v2_style(CLASSES)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(*train, epochs=epochs, batch_size=32, verbose=0)
    model.save(path)
    return model


@pytest.mark.slow  # a whole search with its front fine-tuned (80 s): make test-slow; make test
# keeps a trained-model search in test_max_accuracy_drop_and_a_named_validation_split
def test_a_keras3_model_gives_a_front_that_loads_and_beats_the_original(
        trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("search", "--model", str(trained["model"]), "--data", str(trained["data"]),
                   "--trials", "4", "--sampler", "random", "--no-report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    notes = [ln for ln in proc.stdout.splitlines() if "may have seen" in ln]
    assert len(notes) == 1 and "x_val/y_val" in notes[0]
    doc = json.loads((out / "pareto.json").read_text())
    run = doc["run"]
    assert run["validation_note"] == notes[0].strip()
    assert run["model"]["format"] == "keras3"
    # Keras 3 numbers a layer's default name per process: another module's model trained first
    # makes this one "rescaling_1"
    assert [p.rsplit("_", 1)[0] for p in run["model"]["preprocessing"]] == ["rescaling"]
    frozen = {g["group"]: g["by"] for g in run["model"]["frozen"]}
    assert any("reaches the model's output" in why for by in frozen.values() for why in by)
    refs = {r["name"]: r for r in doc["references"]}
    assert set(refs) == {"original-float32", "original-int8"}
    assert {layer["precision"] for layer in refs["original-int8"]["layers"]} == {"int8"}
    assert refs["original-float32"]["val_accuracy"] > 0.9  # raw pixels fed, as in training
    base = refs["original-float32"]["latency_ms"]["median"]
    assert doc["points"]
    assert min(p["latency_ms"]["median"] for p in doc["points"]) < base
    from ai_edge_litert.interpreter import Interpreter

    for p in doc["points"]:  # fine-tuned toward the original's outputs, kept if no worse
        tuned = p["finetune"]
        assert tuned["method"] == "distillation" and tuned["teacher"] == "original model"
        assert 1 <= tuned["epochs_run"] <= tuned["epochs"] == TRAINED_FINETUNE_EPOCHS
        assert p["val_accuracy"] >= p["search"]["val_accuracy"]  # never worse than the search's
        assert p["candidate"]["prune"] and set(p["candidate"]["precision"]) == {
            layer["name"] for layer in p["layers"]}
        interp = Interpreter(model_path=str(out / p["model"]))
        interp.allocate_tensors()
        assert tuple(interp.get_output_details()[0]["shape"][1:]) == (CLASSES,)
    number = doc["points"][0]["trial"]
    exported = tmp_path / "front.tflite"
    proc = run_cli("export", str(out), "--trial", str(number), "--out", str(exported))
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(exported.with_suffix(".json").read_text())
    assert manifest["preprocessing"]["formula"] == "input = resize(raw)"
    # The independent script re-times every front model. These run in about 30 us, and a
    # shared 2-core machine slows such runs by 1.4-1.7x in bursts of seconds (measured here
    # while another test suite ran), so, as in test_search_e2e, the tolerance is wider than
    # the 25 % larger models are held to, and a disturbed re-measure gets three tries.
    for _ in range(3):
        proc = subprocess.run([sys.executable, str(ROOT / "tools" / "verify_run.py"), str(out),
                               "--tolerance", "0.5"], capture_output=True, text=True, cwd=ROOT)
        rows = [ln for ln in proc.stdout.splitlines() if ln.startswith("trial ")]
        if len(rows) == len(doc["points"]) and proc.returncode == 0:
            break
    assert len(rows) == len(doc["points"]), proc.stdout + proc.stderr
    assert not any("<-- off" in ln for ln in rows), proc.stdout
    assert proc.returncode in (0, 3), proc.stdout + proc.stderr


def test_max_accuracy_drop_and_a_named_validation_split(trained: dict[str, Path],
                                                       tmp_path: Path) -> None:
    import io

    from codesign import search
    from codesign.compress.settings import CompressSettings
    from codesign.config import SearchConfig

    out = tmp_path / "api"
    text = io.StringIO()
    res = search(SearchConfig(out=out, data=str(trained["dval"]), trials=3, sampler="random",
                              latency="measured", finetune_epochs=0),
                 model=trained["model"], compress=CompressSettings(max_accuracy_drop=0.02,
                                                                   trial_finetune_images=2048),
                 out=text)
    doc = res.pareto
    assert "may have seen" not in text.getvalue()
    assert doc["run"]["validation"].startswith("x_val/y_val of")
    assert doc["run"]["validation_note"] is None
    floor = doc["references"][0]["val_accuracy"] - 0.02
    assert doc["references"][0]["name"] == "original-float32"
    assert doc["run"]["min_accuracy"] == pytest.approx(floor)
    assert f"candidates need validation accuracy >= {floor:.4f}" in text.getvalue()
    assert all(p["val_accuracy"] >= floor for p in doc["points"])
    import optuna

    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{out / 'study.db'}")
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:  # the budget reached the sampler
            acc = t.user_attrs["val_accuracy"]
            assert t.constraints["accuracy"] == pytest.approx(floor - acc)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
              and any(v for k, v in t.params.items() if k.startswith("prune/"))]
    assert pruned  # the seeds prune uniformly
    for t in pruned:  # scored after one pass over (here) all 800 training images
        assert t.user_attrs["training"]["images"] == 800
        assert t.user_attrs["training"]["epochs"] == 1


@pytest.mark.slow  # two workers, then a resume (the shared loop suite covers the rest fast)
def test_two_workers_share_the_study_and_a_rerun_resumes(trained: dict[str, Path],
                                                         tmp_path: Path) -> None:
    """A joining worker rebuilds the plan from the study; a rerun keeps references and trials."""
    import optuna

    from codesign.run.directory import RunDir
    from codesign.run.study import load_study

    out = tmp_path / "run"
    args = ["search", "--model", str(trained["model"]), "--data", str(trained["dval"]),
            "--sampler", "random", "--finetune-epochs", "0", "--no-report", "--out", str(out)]
    proc = run_cli(*args, "--trials", "4", "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    joined = (out / "logs" / "worker-2.log").read_text()
    assert "joins" in joined and "completed" in joined, joined[-2000:]
    refs = (out / "references.json").read_text()
    proc = run_cli(*args, "--trials", "6", "--workers", "2")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "reference original" not in proc.stdout  # measured once per run
    assert (out / "references.json").read_text() == refs
    study = load_study(RunDir(out).storage_url)
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 6
    params = [tuple(sorted(t.params.items())) for t in complete]
    assert len(set(params)) == len(params)  # no candidate evaluated twice
    assert all(set(t.user_attrs["candidate"]) == {"resolution", "prune", "precision", "model"}
               for t in complete)
    proc = run_cli(*args[:-2], "--max-accuracy-drop", "0.05", "--out", str(out), "--trials", "6")
    assert proc.returncode == 2 and "was run with different compress" in proc.stderr


def _refused(*args: str, out: Path) -> str:
    proc = run_cli("search", *args, "--trials", "2", "--out", str(out), timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("codesign: error: "), proc.stderr
    assert not out.exists()  # nothing written
    return lines[0]


def test_bad_input_is_one_line_before_any_work(trained: dict[str, Path], tmp_path: Path) -> None:
    import keras

    root, model, data = trained["root"], str(trained["model"]), str(trained["data"])
    out = tmp_path / "never"
    d = np.load(data)
    perm = np.array([2, 0, 3, 1])
    np.savez(root / "perm.npz", x_train=d["x_train"], y_train=perm[d["y_train"]],
             x_test=d["x_test"], y_test=perm[d["y_test"]])
    five = d["y_train"].copy()
    five[:5] = 4
    np.savez(root / "five.npz", x_train=d["x_train"], y_train=five, x_test=d["x_test"],
             y_test=d["y_test"])
    (root / "text.keras").write_text("not a model")
    blob = trained["model"].read_bytes()
    (root / "cut.keras").write_bytes(blob[: len(blob) // 2])
    a, b = keras.Input((32, 32, 3)), keras.Input((32, 32, 3))
    two = keras.layers.Dense(CLASSES)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Add()([a, b])))
    keras.Model([a, b], two).save(root / "two.keras")
    vec = keras.Input((12,))
    keras.Model(vec, keras.layers.Dense(CLASSES)(vec)).save(root / "vector.keras")

    cases = [  # (what the one line says, the arguments)
        (["4 outputs but the data has 5 classes"], ["--model", model, "--data",
                                                    str(root / "five.npz")]),
        (["near chance", "label order"], ["--model", model, "--data", str(root / "perm.npz")]),
        (["scales its own input"], ["--model", model, "--data", data, "--input-scale", "1"]),
        (["not a Keras model file"], ["--model", str(root / "text.keras"), "--data", data]),
        (["truncated or damaged"], ["--model", str(root / "cut.keras"), "--data", data]),
        (["2 inputs"], ["--model", str(root / "two.keras"), "--data", data]),
        (["not an image"], ["--model", str(root / "vector.keras"), "--data", data]),
        (["--latency hybrid refused", "no latency model", "codesign profile build"],
         ["--model", model, "--data", data, "--latency", "hybrid"]),
        (["--latency predicted does not apply", "measured, hybrid"],
         ["--model", model, "--data", data, "--latency", "predicted"]),
        (["fraction from 0 to 1"], ["--model", model, "--data", data,
                                    "--max-accuracy-drop", "3"]),
        (["applies to --model searches"], ["--data", data, "--val-data", data]),
        (["--no-references applies to searches of the built-in space"],
         ["--model", model, "--data", data, "--no-references"]),
        (["needs x_val and y_val"], ["--model", model, "--data", data, "--val-data", data]),
    ]
    # each refusal is its own process (most load TensorFlow to read the model): two at a time
    with ThreadPoolExecutor(2) as pool:
        lines = list(pool.map(lambda case: _refused(*case[1], out=out), cases))
    for (words, args), line in zip(cases, lines, strict=True):
        assert all(w in line for w in words), (args, line)


def test_a_model_fed_other_pixels_than_in_training_names_preprocessing(tmp_path: Path) -> None:
    import keras

    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, 400)
    x = (y[:, None, None, None] * 64 + rng.uniform(0, 63, (400, 16, 16, 3))).astype("uint8")
    np.savez(tmp_path / "bands.npz", x_train=x, y_train=y, x_test=x[:80], y_test=y[:80])
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))  # trained on [0, 1] pixels, which it does not scale itself
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(8, 3, activation="relu")(inp))
    model = keras.Model(inp, keras.layers.Dense(CLASSES, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(x / 255.0, y, epochs=30, batch_size=32, verbose=0)
    assert np.mean(model.predict(x / 255.0, verbose=0).argmax(-1) == y) > 0.9
    path = tmp_path / "plain.keras"
    model.save(path)
    line = _refused("--model", str(path), "--data", str(tmp_path / "bands.npz"),
                    "--input-scale", "1", out=tmp_path / "never")  # raw 0..255 fed instead
    assert "near chance" in line and "preprocessing" in line and "--input-scale" in line


def test_input_map_and_diagnosis() -> None:
    raw = np.array([0.0, 51.0, 255.0], np.float32)
    images = raw / 255.0  # codesign's [0, 1] images of uint8 data
    own = input_map(1 / 255.0, 0.0, ["rescaling"], (None, None))
    assert own.source == "model" and np.allclose(own(images), raw, atol=1e-4)
    flags = input_map(1 / 255.0, 0.0, [], (2 / 255.0, -1.0))
    assert np.allclose(flags(images), raw * 2 / 255.0 - 1.0, atol=1e-5)
    assert input_map(1 / 255.0, 0.0, [], (None, None)).a == 1.0
    labels = np.repeat(np.arange(4), 25)
    assert near_chance(0.27, labels) and not near_chance(0.5, labels)
    swapped = (labels + 1) % 4
    assert "label order" in diagnose(swapped, labels, own, 4)
    noise = np.random.default_rng(0).integers(0, 4, 100)
    assert "preprocessing" in diagnose(noise, labels, own, 4)


def test_channel_groups_say_why_they_froze_and_rescaling_passes_through() -> None:
    import tf_keras

    from codesign.hyper.graph import channel_graph

    L = tf_keras.layers
    inp = tf_keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, name="a")(L.Rescaling(0.5, name="scale")(inp))
    x = L.Rescaling(2.0, name="mid")(x)  # scalar: channels pass through, nothing frozen
    y = L.Conv2D(8, 1, name="b")(x)
    z = L.Reshape((6 * 6 * 8,), name="reshape")(y)
    out = L.Dense(4, name="head")(z)
    graph = channel_graph(tf_keras.Model(inp, out))
    groups = graph.groups
    assert groups["a"].prunable and groups["a"].frozen_by == ()
    assert not groups["b"].prunable and groups["b"].frozen_by == (
        "reshape (Reshape) cannot be followed",)
    assert groups["head"].frozen_by == ("reaches the model's output (head)",)
    described = {g["name"]: g for g in graph.describe()["groups"]}
    assert described["b"]["frozen_by"] == ["reshape (Reshape) cannot be followed"]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["h5", "savedmodel"])
def test_tf_keras_models_with_residuals_and_concatenations(trained: dict[str, Path],
                                                           tmp_path: Path, kind: str) -> None:
    import tf_keras

    x, y = rgb_images(800, 0)
    tf_keras.utils.set_random_seed(0)
    model = resnet_style(CLASSES, concat=kind == "savedmodel")
    model.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    path = tmp_path / ("m.h5" if kind == "h5" else "saved")
    model.save(path)
    out = tmp_path / "run"
    proc = run_cli("search", "--model", str(path), "--data", str(trained["dval"]), "--trials",
                   "4", "--sampler", "random", "--finetune-epochs", "3", "--no-report",
                   "--out", str(out))  # the mechanics; the default's length is the Keras 3 test's
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["run"]["model"]["format"] == kind and doc["run"]["model"]["output"] == "logits"
    refs = {r["name"]: r for r in doc["references"]}
    assert refs["original-float32"]["val_accuracy"] > 0.9
    base = refs["original-float32"]["latency_ms"]["median"]
    assert min(p["latency_ms"]["median"] for p in doc["points"]) < base
    from ai_edge_litert.interpreter import Interpreter

    for p in doc["points"]:
        Interpreter(model_path=str(out / p["model"])).allocate_tensors()
    groups = doc["run"]["model"]["groups"]
    prunable = {g["name"] for g in groups if g["prunable"]}
    assert set(doc["points"][0]["candidate"]["prune"]) == prunable
    if kind == "h5":  # residual additions tie their branches: one group, several producers
        assert any(len(g["producers"]) >= 2 and g["prunable"] for g in groups)
    else:  # concatenated groups stay side by side, each prunable
        assert sum(g["prunable"] for g in groups) >= 4


def test_the_batch_norm_criterion_keeps_the_largest_scales() -> None:
    import tf_keras

    from codesign.hyper.graph import channel_graph
    from codesign.hyper.prune import importance, prune_model

    L = tf_keras.layers
    inp = tf_keras.Input((8, 8, 3))
    x = L.BatchNormalization(name="bn")(L.Conv2D(6, 3, name="conv")(inp))
    out = L.Dense(2, name="head")(L.GlobalAveragePooling2D()(L.ReLU()(x)))
    model = tf_keras.Model(inp, out)
    gamma = np.array([0.1, 3.0, 0.2, 2.0, 0.3, 1.0], np.float32)
    model.get_layer("bn").gamma.assign(gamma)
    kernel = model.get_layer("conv").kernel.numpy()
    kernel[..., :] = np.arange(1, 7, dtype=np.float32)  # L1 grows with the channel index
    model.get_layer("conv").kernel.assign(kernel)
    graph = channel_graph(model)
    assert np.argsort(-importance(model, graph, "bn")["conv"])[:3].tolist() == [1, 3, 5]
    assert np.argsort(-importance(model, graph, "l1")["conv"])[:3].tolist() == [5, 4, 3]
    narrow, counts = prune_model(model, graph, {"conv": 0.5}, "bn")
    assert counts["conv"] == 3
    assert np.allclose(narrow.get_layer("bn").gamma.numpy(), [3.0, 2.0, 1.0])


@pytest.mark.slow  # a whole search on rebuilt inputs
def test_search_resolution_offers_what_the_model_runs_at(trained: dict[str, Path],
                                                        tmp_path: Path) -> None:
    import optuna
    import tf_keras

    from codesign.compress.resolution import resolutions
    from codesign.hardware import litert

    out = tmp_path / "res"
    proc = run_cli("search", "--model", str(trained["model"]), "--data", str(trained["dval"]),
                   "--search-resolution", "--trials", "9", "--sampler", "random",
                   "--finetune-epochs", "0", "--trial-finetune-images", "0", "--no-report",
                   "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert "input resolutions searched: 32, 24, 16" in proc.stdout
    doc = json.loads((out / "pareto.json").read_text())
    assert doc["run"]["model"]["resolutions"] == [32, 24, 16]
    study = optuna.load_study(study_name="codesign", storage=f"sqlite:///{out / 'study.db'}")
    sizes = set()
    for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        size = t.user_attrs["candidate"]["resolution"]
        blob = (out / "cache" / f"trial-{t.number}.tflite").read_bytes()
        assert litert.io_details(blob)["input"]["shape"][1:3] == [size, size]
        sizes.add(size)
    assert 32 in sizes and sizes - {32}  # the 6 uniform seeds keep the model's own, others vary
    L = tf_keras.layers  # a Flatten before the classifier fixes the input size
    inp = tf_keras.Input((16, 16, 3))
    flat = L.Flatten()(L.Conv2D(4, 3, padding="same")(inp))
    sizes_, why = resolutions(tf_keras.Model(inp, L.Dense(3)(flat)), (16, 16, 3), 3)
    assert sizes_ == [16] and why.startswith("at 8x8")


def test_runs_made_before_trial_finetune_images_still_resume() -> None:
    """The resume identity leaves the newer setting out at the value older runs had."""
    from codesign.compress.settings import CompressSettings, _compress_identity

    assert "trial_finetune_images" not in _compress_identity(CompressSettings())
    assert _compress_identity(CompressSettings(trial_finetune_images=64))[
        "trial_finetune_images"] == 64
