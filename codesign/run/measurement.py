"""What one evaluation measured, and how a trial's user attributes hold it.

The evaluation child returns a :class:`Measurement`; the loop writes it into the
trial's user attributes with :meth:`Measurement.to_attrs` (one attribute per
field, the names ``pareto.json`` schema 1 uses) and every reader gets it back with
:meth:`Measurement.from_attrs`. Objective values and budget constraints are
computed from it here, for every model source alike.

A candidate that could not be measured is a :class:`Measurement` too, made by
:meth:`Measurement.failure`: it holds the reason (``fail_reason``, the
attribute's name since the first runs, so a run made before reads the same)
and the figures it has, none for a candidate that never reached the child.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any

# Fields written only when set (a source that does not train has no ``training``).
_OPTIONAL = ("channels", "training", "ram", "fail_reason")
MAX_REASON = 2000  # characters of a fail reason kept on the trial


@dataclass(frozen=True)
class Measurement:
    """One candidate's figures on the profile's runtime, or why it has none.

    A measured candidate has every figure up to ``io``; a failed one has its
    ``fail_reason`` (see :meth:`failure`) and no figures.

    Attributes:
        val_accuracy: Accuracy of the converted file on the validation split.
        test_accuracy: The same on the test split.
        latency_ms: The latency record: ``median``, ``p90``, ``mean``, ``std``,
            ``min`` (the spread), ``host_rss_growth_mb``, ``source`` (``measured``
            or ``predicted``), the device and runtime and the timing's
            re-timing counts; None until it is timed.
        size_bytes: The ``.tflite`` file's size.
        size_gzip_bytes: Its gzip-compressed size.
        layers: Per layer: name, kind, output channels and precision.
        io: Input and output tensors (names, shapes, types).
        params: Parameters of the model that was converted.
        times: Seconds per stage (build, conversion, accuracy, latency, total...).
        channels: Channels kept per channel group (sources that prune a graph).
        training: How the model was trained (sources that train).
        ram: The tensor arena a TFLM firmware reserves for the file: ``bytes``
            (head plus tail), ``head_bytes`` (planned activations),
            ``tail_bytes`` (persistent) and ``source`` (``tflm``: measured by
            TFLM's recording allocator; ``estimate``: from the file); None in
            runs of codesign before it.
        fail_reason: Why the candidate could not be measured (None: it was).
    """

    val_accuracy: float | None = None
    test_accuracy: float | None = None
    latency_ms: dict[str, Any] | None = None
    size_bytes: int | None = None
    size_gzip_bytes: int | None = None
    layers: list[dict[str, Any]] | None = None
    io: dict[str, Any] | None = None
    params: int = 0
    times: dict[str, float] = field(default_factory=dict)
    channels: dict[str, int] | None = None
    training: dict[str, Any] | None = None
    ram: dict[str, Any] | None = None
    fail_reason: str | None = None

    @classmethod
    def failure(cls, reason: str) -> Measurement:
        """The record of a candidate that failed, with ``reason`` (cut to MAX_REASON)."""
        return cls(fail_reason=str(reason)[:MAX_REASON])

    @property
    def failed(self) -> bool:
        """True if the candidate could not be measured."""
        return self.fail_reason is not None

    # --- conversion --------------------------------------------------------------------

    def to_attrs(self) -> dict[str, Any]:
        """The trial user attributes that hold this measurement.

        A measured candidate writes every figure (the optional ones when set); a
        failed one writes its reason and only the fields that differ from their
        defaults.
        """
        if self.failed:
            return {f.name: getattr(self, f.name) for f in fields(self)
                    if getattr(self, f.name) != _default(f)}
        attrs = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _OPTIONAL:
            if attrs[name] is None:
                del attrs[name]
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any]) -> Measurement:
        """A measurement from a trial's user attributes (or a child's reply, or a record).

        Keys that are not fields (``candidate``, ``finetune``...) are ignored.
        """
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in attrs.items() if k in names})

    def record(self, trial: Any, budgets: Mapping[str, float] | None = None) -> None:
        """Write this measurement into ``trial``'s user attributes (and its budget constraints).

        Args:
            trial: An Optuna trial (``set_user_attr``, ``set_constraint``).
            budgets: The budgets the trial is held to (None: no constraints).
        """
        for key, value in self.to_attrs().items():
            trial.set_user_attr(key, value)
        for key, value in self.constraint_values(budgets or {}).items():
            trial.set_constraint(key, value)

    def timed(self, latency: dict[str, Any], seconds: float | None = None) -> Measurement:
        """This measurement with its latency record (and the seconds timing took)."""
        times = dict(self.times)
        if seconds is not None:
            times["latency"] = round(seconds, 4)
        return replace(self, latency_ms=latency, times=times)

    # --- what the study sees -----------------------------------------------------------

    @property
    def ram_bytes(self) -> int | None:
        """The tensor arena's bytes (measured on TFLM, else estimated), if known."""
        return ram_bytes(self.to_attrs())

    @property
    def flash_bytes(self) -> int:
        """The bytes a firmware embeds: the ``.tflite`` file's size."""
        return self.size_bytes

    @property
    def latency_median(self) -> float:
        """The latency median in milliseconds."""
        if self.latency_ms is None:
            raise ValueError("the measurement has no latency yet")
        return float(self.latency_ms["median"])

    def objective_values(self, objectives: tuple[str, ...]) -> tuple[float, ...]:
        """Objective values in the study's order (see :func:`objective_values`)."""
        return objective_values(self.to_attrs(), objectives)

    def constraint_values(self, budgets: Mapping[str, float]) -> dict[str, float]:
        """Budget constraints (feasible when every value is zero or less)."""
        return constraint_values(self.to_attrs(), budgets)


def _default(f: Any) -> Any:
    """A dataclass field's default value."""
    return f.default_factory() if f.default is MISSING else f.default


def fail_reason(attrs: Mapping[str, Any]) -> str | None:
    """Why a trial failed, from its user attributes (None if it did not, or did not say)."""
    return Measurement.from_attrs(attrs).fail_reason


def ram_bytes(attrs: Mapping[str, Any]) -> int | None:
    """The arena bytes of measurement attributes (None when not known)."""
    ram = attrs.get("ram") or {}
    value = ram.get("bytes")
    return None if value is None else int(value)


def objective_values(attrs: Mapping[str, Any], objectives: tuple[str, ...]) -> tuple[float, ...]:
    """Objective values of measurement attributes, in the study's order.

    ``accuracy`` is validation accuracy, ``latency`` the median in ms, ``size``
    and ``flash`` the file's KB, ``ram`` the arena's KB (infinite when unknown).
    """
    values = {"accuracy": lambda: attrs["val_accuracy"],
              "latency": lambda: attrs["latency_ms"]["median"],
              "size": lambda: attrs["size_bytes"] / 1024,
              "flash": lambda: attrs["size_bytes"] / 1024,
              "ram": lambda: _kb(ram_bytes(attrs))}
    return tuple(values[o]() for o in objectives)


def _kb(value: int | None) -> float:
    return float("inf") if value is None else value / 1024


def constraint_values(attrs: Mapping[str, Any], budgets: Mapping[str, float]
                      ) -> dict[str, float]:
    """Budget constraints of measurement attributes (feasible when every value is <= 0).

    Args:
        attrs: The measurement's attributes (:meth:`Measurement.to_attrs`, or a
            front point's).
        budgets: ``max_latency_ms``, ``max_size_kb``, ``max_ram_kb``,
            ``max_flash_kb`` and ``min_accuracy``, those that are set.
    """
    out = {}
    if "max_latency_ms" in budgets:
        out["latency"] = attrs["latency_ms"]["median"] - budgets["max_latency_ms"]
    if "max_size_kb" in budgets:
        out["size"] = attrs["size_bytes"] / 1024 - budgets["max_size_kb"]
    if "max_ram_kb" in budgets:
        out["ram"] = _kb(ram_bytes(attrs)) - budgets["max_ram_kb"]
    if "max_flash_kb" in budgets:
        out["flash"] = attrs["size_bytes"] / 1024 - budgets["max_flash_kb"]
    if "min_accuracy" in budgets:
        out["accuracy"] = budgets["min_accuracy"] - attrs["val_accuracy"]
    return out
