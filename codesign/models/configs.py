"""A Keras 3 layer's settings as the tf_keras layer of the same class takes them.

Keras 3 and tf_keras share most layer classes and argument names. Where they
differ this module adapts the config:

* ``dtype`` is a serialized ``DTypePolicy`` dict in Keras 3; tf_keras takes the
  policy's name (``"float32"``, ``"mixed_float16"``). Quantized policies fail.
* Initializers, regularizers and constraints are ``{"module", "class_name",
  "config", "registered_name"}`` dicts; tf_keras gets ``{"class_name", "config"}``
  with the arguments it knows (Keras 3 added ``input_axes``/``output_axes`` to
  the variance-scaling initializers, for instance).
* Renamed arguments (``LeakyReLU(negative_slope=)`` is tf_keras ``alpha``).
* Arguments tf_keras does not have (``Dense(lora_rank=, quantization_config=)``,
  ``Resizing(antialias=)``...) are dropped when they hold Keras 3's default, and
  refused otherwise: the tf_keras layer would compute something else.
* Activations: the names in :data:`SAME_ACTIVATIONS` mean the same in both.
  Keras 3's ``hard_sigmoid`` is ``relu6(x + 3) / 6`` but tf_keras's is
  ``clip(0.2 x + 0.5)``, and tf_keras has no ``hard_swish``/``hard_silu``: those
  three are returned as *tail* activations, built by the translator from
  built-in layers (the pattern TFLite fuses into ``HARD_SWISH``).
"""

from __future__ import annotations

import inspect
from typing import Any

import tf_keras

from codesign.errors import CodesignError

BUILTIN_MODULE = "keras.src."
# Activation names whose tf_keras function computes what the Keras 3 one does
# (tests/test_user_models.py compares them on a range of inputs).
SAME_ACTIVATIONS = frozenset({
    "elu", "exponential", "gelu", "leaky_relu", "linear", "log_softmax", "mish", "relu",
    "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "softsign", "swish", "tanh",
})
# Keras 3 activations rebuilt from built-in tf_keras layers after the layer.
TAIL_ACTIVATIONS = {"hard_sigmoid": "hard_sigmoid", "hard_silu": "hard_swish",
                    "hard_swish": "hard_swish"}
RENAMED = {"LeakyReLU": {"negative_slope": "alpha"}}
# Values of arguments tf_keras lacks that mean what tf_keras does anyway.
# (Keras 3 hides some arguments in **kwargs: LayerNormalization's deprecated rms_scaling.)
TF_KERAS_BEHAVIOUR = {"data_format": "channels_last", "rms_scaling": False}
# Keyword arguments every tf_keras layer takes besides its own (base_layer.Layer).
TF_KERAS_LAYER_KWARGS = frozenset({
    "name", "dtype", "trainable", "dynamic", "input_dim", "input_shape", "batch_input_shape",
    "batch_size", "weights", "activity_regularizer", "autocast", "implementation",
})
OBJECT_MODULES = {
    "keras.initializers": tf_keras.initializers,
    "keras.regularizers": tf_keras.regularizers,
    "keras.constraints": tf_keras.constraints,
}
_EMPTY = inspect.Parameter.empty


def is_builtin(obj: Any) -> bool:
    """Whether ``obj``'s class is one of Keras 3's own (not a user's)."""
    return type(obj).__module__.startswith(BUILTIN_MODULE)


def init_params(cls: type) -> dict[str, inspect.Parameter]:
    """The keyword arguments ``cls(...)`` takes, following ``**kwargs`` up the classes."""
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            sig = inspect.signature(init)
        except (TypeError, ValueError):
            break
        more = False
        for name, p in sig.parameters.items():
            if p.kind is p.VAR_KEYWORD:
                more = True
            elif name != "self" and p.kind is not p.VAR_POSITIONAL:
                params.setdefault(name, p)
        if not more:
            break
    return params


def tf_keras_layer_class(layer: Any) -> type:
    """The tf_keras layer class of the same name as the Keras 3 ``layer``'s.

    Raises:
        CodesignError: If the layer is a user's class or tf_keras has no such layer.
    """
    name = type(layer).__name__
    if not is_builtin(layer):
        raise custom_layer_error(layer.name, name)
    cls = getattr(tf_keras.layers, name, None)
    if not isinstance(cls, type) or name in ("Lambda", "TFSMLayer"):
        raise CodesignError(
            f"layer '{layer.name}' ({name}) has no tf_keras counterpart, and codesign "
            "compresses tf_keras models: rebuild the model without it and save it again"
        )
    return cls


def custom_layer_error(name: str, class_name: str) -> CodesignError:
    """The one-line error for a user-defined layer class."""
    return CodesignError(
        f"layer '{name}' is a custom layer (class {class_name}): codesign needs built-in "
        "Keras layers; rebuild the model from built-in layers (keras.layers) and save it again"
    )


def layer_config(layer: Any, cls: type) -> tuple[dict[str, Any] | None, str | None]:
    """The config to build ``cls`` from, and the tail activation to add after it.

    Args:
        layer: A built-in Keras 3 layer.
        cls: Its tf_keras class (:func:`tf_keras_layer_class`).

    Returns:
        ``(config, tail)``: ``config`` is None when the layer is an
        ``Activation`` the tail replaces; ``tail`` is ``"hard_sigmoid"``,
        ``"hard_swish"`` or None.

    Raises:
        CodesignError: If a setting has no tf_keras equivalent.
    """
    where = f"layer '{layer.name}' ({type(layer).__name__})"
    config = dict(layer.get_config())
    for old, new in RENAMED.get(type(layer).__name__, {}).items():
        if old in config:
            config[new] = config.pop(old)
    config["dtype"] = dtype_name(config.get("dtype"), where)
    tail = None
    if "activation" in config:
        config["activation"], tail = activation(config["activation"], where)
        if tail and type(layer).__name__ == "Activation":
            return None, tail
    for key, value in list(config.items()):
        if isinstance(value, dict) and "class_name" in value:
            config[key] = serialized_object(value, f"{where} {key}")
    keep = init_params(cls).keys() | TF_KERAS_LAYER_KWARGS
    config = drop_defaults(config, keep, init_params(type(layer)), where)
    return config, tail


def dtype_name(dtype: Any, where: str) -> str | None:
    """A Keras 3 dtype policy (a serialized dict or a name) as the name tf_keras takes.

    Raises:
        CodesignError: If the policy is a quantized one.
    """
    kind = "DTypePolicy"
    if dtype is None or isinstance(dtype, str):
        name = dtype
    elif isinstance(dtype, dict):
        kind, name = str(dtype.get("class_name")), (dtype.get("config") or {}).get("name")
    else:
        kind, name = type(dtype).__name__, getattr(dtype, "name", str(dtype))
    if kind not in ("DTypePolicy", "FloatDTypePolicy") or "_from_" in str(name):
        raise CodesignError(
            f"{where} is quantized (dtype policy {kind} {name}): give codesign the float "
            "model, it chooses each layer's precision itself"
        )
    return name


def activation(value: Any, where: str) -> tuple[str, str | None]:
    """A Keras 3 activation setting as ``(tf_keras activation name, tail activation)``.

    Raises:
        CodesignError: If it is a user's function or tf_keras has nothing that computes it.
    """
    if isinstance(value, dict):
        value = value.get("config") if value.get("class_name") == "function" \
            and str(value.get("module", "")).startswith("keras") else value
    if not isinstance(value, str):
        raise CodesignError(
            f"{where} uses a custom activation ({value!r:.60}): codesign needs built-in "
            "Keras activations; use one and save the model again"
        )
    if value in SAME_ACTIVATIONS:
        return value, None
    if value in TAIL_ACTIVATIONS:
        return "linear", TAIL_ACTIVATIONS[value]
    raise CodesignError(
        f"{where} uses the activation '{value}', which tf_keras does not have: "
        f"use one of {', '.join(sorted(SAME_ACTIVATIONS | TAIL_ACTIVATIONS.keys()))}"
    )


def serialized_object(value: dict[str, Any], where: str) -> dict[str, Any]:
    """A serialized Keras 3 initializer, regularizer or constraint, for tf_keras.

    Raises:
        CodesignError: If it is not a built-in one, or uses settings tf_keras lacks.
    """
    module = OBJECT_MODULES.get(str(value.get("module")))
    name = value["class_name"]
    cls = getattr(module, name, None) if module is not None else None
    if not isinstance(cls, type):
        raise CodesignError(
            f"{where} is {name} ({value.get('module')}), which tf_keras does not have: "
            "use a built-in Keras initializer, regularizer or constraint"
        )
    import keras  # Keras 3: only reached while translating a Keras 3 model

    cls3 = getattr(getattr(keras, str(value["module"]).split(".")[-1]), name, None)
    defaults = init_params(cls3) if isinstance(cls3, type) else {}
    config = drop_defaults(dict(value.get("config") or {}), init_params(cls).keys(), defaults,
                           where)
    return {"class_name": name, "config": config}


def drop_defaults(
    config: dict[str, Any], keep: Any, defaults: dict[str, inspect.Parameter], where: str
) -> dict[str, Any]:
    """``config`` without the keys tf_keras lacks, each of which must hold Keras 3's default.

    Raises:
        CodesignError: If a key tf_keras lacks is set to something else.
    """
    out = {}
    for key, value in config.items():
        if key in keep:
            out[key] = value
            continue
        default = defaults[key].default if key in defaults else _EMPTY
        if key in TF_KERAS_BEHAVIOUR and _same(value, TF_KERAS_BEHAVIOUR[key]):
            continue
        if default is _EMPTY or not _same(value, default):
            raise CodesignError(
                f"{where} sets {key}={value!r:.60}, which tf_keras does not support: "
                f"save the model with {key} left at its default"
            )
    return out


def _same(value: Any, default: Any) -> bool:
    """``value == default``, tuples and lists alike."""
    if isinstance(value, list | tuple) and isinstance(default, list | tuple):
        return list(value) == list(default)
    try:
        return bool(value == default)
    except Exception:  # noqa: BLE001 - arrays and odd objects: not the default
        return False
