"""Reading a user's trained model: Keras 3 ``.keras``, tf_keras ``.h5`` or SavedModel.

:func:`load_user_model` tells the format from the file itself (a zip archive,
an HDF5 file, a directory with ``saved_model.pb``), checks what it can before
loading anything (a model's config names its layer classes: a custom layer, a
``Lambda`` or a subclassed model is refused with its name), loads it, makes a
Keras 3 model a tf_keras one (:mod:`codesign.models.keras3`), makes nested
models' layers part of the outer graph (:mod:`codesign.models.flatten`) and
checks that the result computes what the saved model does. Every refusal is a one-line
:class:`~codesign.errors.CodesignError` saying what to do.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import tf_keras

from codesign.errors import CodesignError
from codesign.models import facts
from codesign.models.facts import Normalize, OutputKind, Rescale

Format = Literal["keras3", "keras2", "h5", "savedmodel"]
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MODEL_CLASSES = ("Functional", "Sequential", "Model")
TF_KERAS_OP_LAYERS = ("TFOpLambda", "SlicingOpLambda")
SAVE_HINT = "save it with model.save('model.keras')"


@dataclass(frozen=True)
class UserModel:
    """A user's model as codesign compresses it, and what codesign knows about it.

    Attributes:
        model: The tf_keras functional model with the user's weights.
        path: The file or directory it was read from.
        format: ``"keras3"`` (a Keras 3 ``.keras`` file), ``"keras2"`` (a
            ``.keras`` file tf_keras wrote), ``"h5"`` or ``"savedmodel"``.
        input_shape: ``(height, width, channels)``.
        num_classes: The output's size.
        output: ``"softmax"``/``"sigmoid"`` if the model ends in one, else ``"logits"``.
        preprocessing: The ``Rescaling``/``Normalization`` layers at the input, in order.
        translated: True if the model was Keras 3 and rebuilt in tf_keras.
        max_difference: For a translated or flattened model, the largest
            absolute difference between its outputs and the saved model's on
            the check inputs (None if the saved model is used as it is).
        notes: What the translation changed: flattened nested models, layers
            added for arithmetic or activations, renamed layers.
    """

    model: tf_keras.Model
    path: str
    format: Format
    input_shape: tuple[int, int, int]
    num_classes: int
    output: OutputKind
    preprocessing: tuple[Rescale | Normalize, ...]
    translated: bool = False
    max_difference: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def softmax(self) -> bool:
        """Whether the outputs are probabilities (a softmax ends the model)."""
        return self.output == "softmax"


def load_user_model(path: str | Path, sample: np.ndarray | None = None) -> UserModel:
    """Read a user's model as a tf_keras functional model, checked.

    Args:
        path: A Keras 3 ``.keras`` file, a tf_keras ``.h5`` file (a Keras 3
            ``.h5`` is translated too) or a tf_keras SavedModel directory.
        sample: Images to compare a translated model with the original on
            (random images in the model's input range if None).

    Raises:
        CodesignError: One line, if the file is not a readable model codesign
            can compress (see the module docstring).
    """
    p = Path(path)
    try:
        return _load(p, sample)
    except CodesignError as e:
        if str(p) in str(e):
            raise
        raise CodesignError(f"{p}: {e}") from e


def _load(p: Path, sample: np.ndarray | None) -> UserModel:
    """:func:`load_user_model`, its errors without the path."""
    kind = detect_format(p)
    if kind == "savedmodel":
        return _from_tf_keras(p, "savedmodel", sample)
    if kind == "h5":
        config = _h5_config(p)
        check_config(config["model_config"])
        if config.get("keras_version", "").startswith("3."):
            return _from_keras3(p, "h5", sample)
        return _from_tf_keras(p, "h5", sample)
    config, version = _archive_config(p)
    check_config(config)
    if version.startswith("2."):
        return _from_tf_keras(p, "keras2", sample)
    return _from_keras3(p, "keras3", sample)


def detect_format(p: Path) -> Literal["keras", "h5", "savedmodel"]:
    """``"keras"`` (a zip archive), ``"h5"`` or ``"savedmodel"``, from the contents.

    Raises:
        CodesignError: If the path is missing or none of these.
    """
    if not p.exists():
        raise CodesignError(f"{p}: no such file or directory: give the path of a saved model")
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "savedmodel"
        raise CodesignError(
            f"{p} is a directory but not a SavedModel (no saved_model.pb in it): give a "
            ".keras file, an .h5 file or a SavedModel directory"
        )
    try:
        with p.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise CodesignError(f"{p} cannot be read ({e.strerror}): check its permissions") from e
    if head.startswith(b"PK"):
        return "keras"
    if head == HDF5_MAGIC:
        return "h5"
    what = {".keras": "a .keras file is a zip archive",
            ".h5": "an .h5 file is an HDF5 file"}.get(p.suffix.lower(), "")
    raise CodesignError(
        f"{p} is not a Keras model file{f' ({what}; this one is not)' if what else ''}: "
        f"give a .keras file, an .h5 file or a SavedModel directory ({SAVE_HINT})"
    )


def _archive_config(p: Path) -> tuple[dict[str, Any], str]:
    """A ``.keras`` archive's model config and the Keras version that wrote it.

    Raises:
        CodesignError: If the archive is truncated, damaged or holds no model.
    """
    try:
        with zipfile.ZipFile(p) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise CodesignError(
                    f"{p} is a zip archive but not a Keras model (no config.json in it): "
                    f"{SAVE_HINT}"
                )
            config = json.loads(z.read("config.json"))
            meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as e:
        raise CodesignError(
            f"{p} is truncated or damaged (not a complete .keras zip archive: {_first(e)}): "
            "copy or save the model again"
        ) from e
    return config, str(meta.get("keras_version", "3"))


def _h5_config(p: Path) -> dict[str, Any]:
    """An HDF5 model file's ``model_config`` (parsed) and ``keras_version``.

    Raises:
        CodesignError: If the file is truncated or holds only weights.
    """
    import h5py

    try:
        with h5py.File(p, "r") as f:
            attrs = {k: f.attrs[k] for k in ("model_config", "keras_version") if k in f.attrs}
    except OSError as e:
        raise CodesignError(
            f"{p} is truncated or damaged (HDF5 cannot read it: {_first(e)}): copy or save the "
            "model again"
        ) from e
    if "model_config" not in attrs:
        raise CodesignError(
            f"{p} holds weights only (saved with save_weights), not a model: save the whole "
            "model with model.save(...)"
        )
    text = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in attrs.items()}
    return {"model_config": json.loads(text["model_config"]),
            "keras_version": text.get("keras_version", "")}


def check_config(config: dict[str, Any]) -> None:
    """Refuse a saved model config that is subclassed or uses custom or ``Lambda`` layers.

    Works on both Keras 3 configs (entries name their ``module``) and tf_keras
    ones (a class is built in if ``tf_keras.layers`` has it).

    Raises:
        CodesignError: Naming the layer and its class.
    """
    if config.get("class_name") not in MODEL_CLASSES or not _builtin(config):
        raise CodesignError(
            f"the saved model is subclassed (class {config.get('class_name')}): codesign "
            "needs a functional or Sequential model (keras.Model(inputs, outputs)); rebuild "
            "it so and save it again"
        )
    for entry in (config.get("config") or {}).get("layers", []):
        cls = str(entry.get("class_name"))
        name = (entry.get("config") or {}).get("name") or entry.get("name") or "?"
        if cls == "Lambda":
            raise CodesignError(
                f"layer '{name}' is a Lambda layer (Python code, which codesign can neither "
                "load safely nor compress): replace it with built-in Keras layers and save the "
                "model again"
            )
        if not _builtin(entry):
            raise _custom_error(name, cls)
        if cls in MODEL_CLASSES:
            check_config(entry)


def _builtin(entry: dict[str, Any]) -> bool:
    """Whether a config entry is one of Keras's own classes."""
    if "module" in entry:
        module, registered = str(entry.get("module")), str(entry.get("registered_name"))
        return module.split(".")[0] in ("keras", "tf_keras") and ">" not in registered
    cls = str(entry.get("class_name"))
    return cls in MODEL_CLASSES or cls in TF_KERAS_OP_LAYERS or \
        isinstance(getattr(tf_keras.layers, cls, None), type)


def _custom_error(name: str, class_name: str) -> CodesignError:
    """The one-line error for a layer of a user-defined class."""
    from codesign.models.configs import custom_layer_error

    return custom_layer_error(name, class_name)


def _first(e: BaseException) -> str:
    """An exception's first line, trimmed."""
    lines = str(e).strip().splitlines()
    return (lines[0] if lines else type(e).__name__)[:200]


def _tf_keras_load(p: Path) -> tf_keras.Model:
    """Load with tf_keras; refuse what is not a built-in functional or Sequential model.

    Raises:
        CodesignError: If tf_keras cannot load it or finds no Keras model in it.
    """
    if p.is_dir() and not (p / "keras_metadata.pb").is_file():
        raise CodesignError(
            f"{p} is a SavedModel without a Keras model in it (written by tf.saved_model.save "
            f"or model.export()): {SAVE_HINT}, or with tf_keras model.save('model.h5')"
        )
    try:
        model = tf_keras.models.load_model(p, compile=False)
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's file
        text = _first(e)
        if "Unknown layer" in text or "Could not locate class" in text:
            raise CodesignError(
                f"{p} uses a custom layer ({text}): codesign needs built-in Keras layers; "
                "rebuild the model from built-in layers and save it again"
            ) from e
        raise CodesignError(f"tf_keras cannot load {p} ({text}): {SAVE_HINT}") from e
    if not isinstance(model, tf_keras.Model):
        raise CodesignError(f"{p} holds no Keras model: {SAVE_HINT}")
    if not isinstance(model, tf_keras.Sequential) and not getattr(
            model, "_is_graph_network", False):
        raise CodesignError(
            f"{p} holds a subclassed model (class {type(model).__name__}): codesign needs a "
            "functional or Sequential model (keras.Model(inputs, outputs)); rebuild it so and "
            "save it again"
        )
    for layer in _all_layers(model):
        module = type(layer).__module__
        if type(layer).__name__ == "Lambda":
            raise CodesignError(
                f"layer '{layer.name}' is a Lambda layer (Python code, which codesign cannot "
                "compress): replace it with built-in Keras layers and save the model again"
            )
        if not module.startswith("tf_keras.src.") or ".saved_model." in module:
            raise _custom_error(layer.name, type(layer).__name__)
    return model


def _all_layers(model: tf_keras.Model) -> list[Any]:
    """The model's layers and, in place of each nested model, its own (all the way down)."""
    out = []
    for layer in model.layers:
        nested = isinstance(layer, tf_keras.Model) and getattr(layer, "_is_graph_network", False)
        out.extend(_all_layers(layer) if nested else [layer])
    return out


def _from_keras3(p: Path, kind: Format, sample: np.ndarray | None) -> UserModel:
    """Load a Keras 3 model, translate it, and check the translation's outputs.

    Raises:
        CodesignError: If Keras 3 cannot load it, it cannot be translated, or the
            two models compute different outputs.
    """
    import keras  # Keras 3, only for Keras 3 files

    from codesign.models.keras3 import graph_of, translate

    try:
        model3 = keras.saving.load_model(p, compile=False, safe_mode=True)
    except Exception as e:  # noqa: BLE001 - any loader failure is the user's file
        text = _first(e)
        if "Lambda" in text:
            raise CodesignError(
                f"{p} has a Lambda layer, which Keras 3 refuses to load safely (it is Python "
                "code): replace it with built-in Keras layers and save the model again"
            ) from e
        if "Could not locate" in text:
            raise CodesignError(
                f"{p} uses a custom class ({text}): codesign needs built-in Keras layers; "
                "rebuild the model from built-in layers and save it again"
            ) from e
        raise CodesignError(f"Keras 3 cannot load {p} ({text}): {SAVE_HINT}") from e
    graph_of(model3)
    facts.check_io([tuple(x.shape) for x in model3.inputs],
                   [tuple(x.shape) for x in model3.outputs],
                   [x.name for x in model3.inputs])
    t = translate(model3)
    notes = tuple(f"flattened {n}" for n in t.flattened) + t.added + \
        tuple(f"renamed {a} to {b}" for a, b in t.renamed)
    user = replace(_finish(t.model, p, kind), translated=True, notes=notes)
    return _checked(user, lambda a: model3(a, training=False), sample, "tf_keras translation")


def _from_tf_keras(p: Path, kind: Format, sample: np.ndarray | None) -> UserModel:
    """Load a tf_keras model; flatten nested models, and check the flat model's outputs."""
    from codesign.models.flatten import flatten, nested

    model = _tf_keras_load(p)
    if not nested(model):
        return _finish(model, p, kind)
    _finish(model, p, kind)  # its input and output checked before flattening
    flat, names, renamed = flatten(model)
    notes = tuple(f"flattened {n}" for n in names) + \
        tuple(f"renamed {a} to {b}" for a, b in renamed)
    user = replace(_finish(flat, p, kind), notes=notes)
    return _checked(user, lambda a: model(a, training=False), sample, "flattened model")


def _checked(user: UserModel, reference: Any, sample: np.ndarray | None, what: str) -> UserModel:
    """``user`` with the largest output difference from ``reference``, if within tolerance.

    Raises:
        CodesignError: If the two compute different outputs.
    """
    x = sample if sample is not None else facts.sample_images(
        user.input_shape, user.model.inputs[0].dtype.name, user.preprocessing)
    diff, tolerance = facts.output_difference(reference, user.model, x)
    if not diff <= tolerance:
        raise CodesignError(
            f"the {what} computes different outputs from the saved model (max difference "
            f"{diff:.3g}, tolerance {tolerance:.3g}): codesign cannot use it; please report it"
        )
    return replace(user, max_difference=diff)


def _finish(model: tf_keras.Model, p: Path, kind: Format) -> UserModel:
    """The facts of a tf_keras model, its input and output checked."""
    facts.check_io([tuple(x.shape.as_list()) for x in model.inputs],
                   [tuple(x.shape.as_list()) for x in model.outputs], model.input_names)
    h, w, c = model.inputs[0].shape.as_list()[1:]
    return UserModel(
        model=model, path=str(p), format=kind, input_shape=(int(h), int(w), int(c)),
        num_classes=int(model.outputs[0].shape[-1]), output=facts.output_activation(model),
        preprocessing=facts.preprocessing(model),
    )
