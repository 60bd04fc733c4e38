"""The only place of the hypermodel path that calls ``trial.suggest_*``.

Parameter names: ``hp/<name>`` for the HyperModel's own hyperparameters (their
keras-tuner names, name scopes included), ``prune/<group>`` for a channel
group (named after its first producing layer) and ``precision/<layer>`` for a
conv, depthwise or dense layer, as in the built-in space. Runs in the search
process: pure Python, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codesign.errors import TrialFailure
from codesign.space.suggest import PRECISION_PREFIX, PRUNE_PREFIX

HP_PREFIX = "hp/"


def suggest_hp(trial: Any, spec: Mapping[str, Any]) -> Any:
    """Ask ``trial`` for one hyperparameter described by the child (see ``hyper.hp.spec_of``).

    Args:
        trial: An ``optuna.Trial``.
        spec: ``{"name", "type": int|float|choice, ...}``: ``low``/``high`` with
            ``step`` and ``log`` for numbers, or ``values`` for a choice.

    Returns:
        The suggested value.
    """
    name = HP_PREFIX + str(spec["name"])
    kind = spec["type"]
    if kind == "choice":
        return trial.suggest_categorical(name, list(spec["values"]))
    if kind == "int":
        return trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                 step=int(spec.get("step") or 1), log=bool(spec.get("log")))
    if kind == "float":
        return trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                   step=spec.get("step"), log=bool(spec.get("log")))
    raise TrialFailure(f"unknown hyperparameter type {kind!r} of {spec['name']!r}")


def suggest_genes(
    trial: Any,
    graph: Mapping[str, Any],
    choices: Mapping[str, Sequence[str]],
    prune_ratios: Sequence[float],
) -> tuple[dict[str, float], dict[str, str]]:
    """Ask ``trial`` for codesign's per-layer genes of a built model.

    Args:
        trial: An ``optuna.Trial``.
        graph: The child's description of the model (``hyper.graph.describe``):
            ``groups`` (name, size, prunable) and ``layers`` (name, kind).
        choices: Precisions the profile's runtime runs, per layer kind.
        prune_ratios: Fractions of a group's channels that may be removed.

    Returns:
        ``(prune ratio per prunable group, precision per layer)``.
    """
    prune = {
        g["name"]: float(trial.suggest_categorical(PRUNE_PREFIX + g["name"], list(prune_ratios)))
        for g in graph["groups"] if g["prunable"]
    }
    precision = {
        layer["name"]: str(trial.suggest_categorical(PRECISION_PREFIX + layer["name"],
                                                     list(choices[layer["kind"]])))
        for layer in graph["layers"]
    }
    return prune, precision


def hp_values(params: Mapping[str, Any]) -> dict[str, Any]:
    """The HyperModel's own values among a trial's parameters (prefix removed)."""
    return {k[len(HP_PREFIX):]: v for k, v in params.items() if k.startswith(HP_PREFIX)}
