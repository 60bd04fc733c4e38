"""What one evaluation measured, and how a trial's user attributes hold it.

The evaluation child returns a :class:`Measurement`; the loop writes it into the
trial's user attributes with :meth:`Measurement.to_attrs` (one attribute per
field, the names ``pareto.json`` schema 1 uses) and every reader gets it back with
:meth:`Measurement.from_attrs`. Objective values and budget constraints are
computed from it here, for every model source alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

# Fields written only when set (a source that does not train has no ``training``).
_OPTIONAL = ("channels", "training", "ram")


@dataclass(frozen=True)
class Measurement:
    """One candidate's figures on the profile's runtime.

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
    """

    val_accuracy: float
    test_accuracy: float
    latency_ms: dict[str, Any] | None
    size_bytes: int
    size_gzip_bytes: int
    layers: list[dict[str, Any]]
    io: dict[str, Any]
    params: int = 0
    times: dict[str, float] = field(default_factory=dict)
    channels: dict[str, int] | None = None
    training: dict[str, Any] | None = None
    ram: dict[str, Any] | None = None

    # --- conversion --------------------------------------------------------------------

    def to_attrs(self) -> dict[str, Any]:
        """The trial user attributes that hold this measurement."""
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
