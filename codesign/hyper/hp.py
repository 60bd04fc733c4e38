"""keras-tuner's ``HyperParameters`` whose values come from an Optuna trial (child side).

A subclass, so everything a HyperModel does with ``hp`` behaves as in
keras-tuner: ``name_scope``, ``conditional_scope``, ``parent_name`` /
``parent_values``, ``Fixed``, ``hp.get`` and ``hp.values``. Only where
keras-tuner would register a new, *active* hyperparameter with its default,
this class takes the trial's value; without one it stops the build with
:class:`NeedValue`, which describes the hyperparameter for the search process
(see :mod:`codesign.hyper.propose`). Inactive hyperparameters return None, as in
keras-tuner, and ask for nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import keras_tuner as kt
from keras_tuner.src.engine.hyperparameters import hp_types

from codesign.hyper.suggest import HP_PREFIX


class NeedValue(BaseException):  # noqa: N818 (a signal, not an error)
    """The build needs a value the trial has not given yet.

    A ``BaseException``, so that a user's ``except Exception`` in ``build``
    cannot swallow it.

    Attributes:
        spec: The hyperparameter, as :func:`spec_of` describes it.
    """

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec["name"])
        self.spec = spec


class TrialHyperParameters(kt.HyperParameters):
    """``HyperParameters`` answered from a trial's values (``hp/<name> -> value``).

    Args:
        answers: The values given so far.
        draw: Gives a missing value itself (a hyperparameter's :func:`spec_of` in,
            the value out) instead of stopping the build: a latency build's
            random draw, one build per candidate.
    """

    def __init__(self, answers: Mapping[str, Any],
                 draw: Callable[[dict[str, Any]], Any] | None = None) -> None:
        super().__init__()
        self._answers = dict(answers)
        self._draw = draw

    @property
    def answers(self) -> dict[str, Any]:
        """Every value the build used (``hp/<name> -> value``), drawn ones included."""
        return dict(self._answers)

    def _register(self, hyperparameter: Any, overwrite: bool = False) -> Any:
        hp = hyperparameter
        if isinstance(hp, hp_types.Fixed) or not self._conditions_are_active(hp.conditions):
            return super()._register(hp, overwrite)
        key = HP_PREFIX + hp.name
        if key not in self._answers:
            if self._draw is None:
                raise NeedValue(spec_of(hp))
            self._answers[key] = self._draw(spec_of(hp))
        self.values[hp.name] = self._answers[key]
        return super()._register(hp, overwrite=False)


def spec_of(hp: Any) -> dict[str, Any]:
    """A keras-tuner hyperparameter as plain data for ``codesign.hyper.suggest.suggest_hp``.

    ``Int`` and ``Float`` keep their range and step; ``log`` sampling without a
    step becomes Optuna's log scale, with a step (keras-tuner then multiplies
    by it) the list of its values. ``reverse_log`` is searched on a linear
    scale. ``Boolean`` is a choice of False and True.
    """
    name = hp.name
    if isinstance(hp, hp_types.Boolean):
        return {"name": name, "type": "choice", "values": [False, True]}
    if isinstance(hp, hp_types.Choice):
        return {"name": name, "type": "choice", "values": list(hp.values)}
    if isinstance(hp, (hp_types.Int, hp_types.Float)):
        is_int = isinstance(hp, hp_types.Int)
        low, high, step = hp.min_value, hp.max_value, hp.step
        if hp.sampling == "log" and step is not None:
            values, v = [], low
            while v <= high:
                values.append(int(v) if is_int else float(v))
                v *= step
            return {"name": name, "type": "choice", "values": values}
        log = hp.sampling == "log"
        if step is not None:  # Optuna wants high - low to be a multiple of step
            high = low + ((high - low) // step) * step
        kind = "int" if is_int else "float"
        if is_int:
            return {"name": name, "type": kind, "low": int(low), "high": int(high),
                    "step": int(step or 1), "log": log}
        return {"name": name, "type": kind, "low": float(low), "high": float(high),
                "step": None if step is None or log else float(step), "log": log}
    raise TypeError(f"hyperparameter {name!r} of type {type(hp).__name__} is not supported")
