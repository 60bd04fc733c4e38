"""The candidate: a frozen, serializable point of any search space."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from codesign.errors import CodesignError

PRECISIONS = ("float32", "float16", "int8", "int16x8", "int4")


@dataclass(frozen=True)
class Candidate:
    """One network a space proposed: what the loop, the child and the front need of it.

    Every space's candidate is one of these. What all share is the input side,
    a prune ratio per channel group and a precision per layer; the rest says
    which space made it and is None for the others: ``depths`` (the built-in
    family), ``hp`` and ``hypermodel`` (a HyperModel), ``model`` (a trained
    model). :meth:`to_dict` writes the set fields only, so ``pareto.json`` holds
    each space's candidate as it always has.

    Attributes:
        resolution: Input height and width in pixels.
        depths: Number of blocks used in each stage (the built-in family).
        prune: ``(channel group, fraction of channels removed)`` per channel
            group (the built-in family: every group of the maximal network,
            sorted by group).
        precision: ``(layer, precision)`` per conv, depthwise and dense layer
            (the built-in family: every layer of the maximal network, sorted).
        hp: ``(name, value)`` of the HyperModel's hyperparameters (keras-tuner names).
        hypermodel: Where the HyperModel lives (as the user wrote it).
        model: The trained model's file name.
        kernel: ``(block, depthwise kernel size)`` per block of the maximal
            network (the built-in family when its space offers more than one
            kernel; None: the space's only kernel).
        answers: ``(trial parameter, value)`` the child rebuilds the HyperModel
            with (not part of the record, nor of equality).
        build_s: Seconds the space spent building it while suggesting (a
            define-by-run space; not part of the record, nor of equality).
    """

    resolution: int
    depths: tuple[int, ...] | None
    prune: tuple[tuple[str, float], ...]
    precision: tuple[tuple[str, str], ...]
    hp: tuple[tuple[str, Any], ...] | None = None
    hypermodel: str | None = None
    model: str | None = None
    kernel: tuple[tuple[str, int], ...] | None = None
    answers: tuple[tuple[str, Any], ...] = field(default=(), compare=False)
    build_s: float = field(default=0.0, compare=False)

    @classmethod
    def make(
        cls,
        resolution: int,
        depths: tuple[int, ...] | list[int],
        prune: Mapping[str, float],
        precision: Mapping[str, str],
        kernel: Mapping[str, int] | None = None,
    ) -> Candidate:
        """Build a candidate of the built-in family from plain mappings.

        ``kernel`` is the depthwise kernel per block (None: the space's only one).
        """
        return cls(
            resolution=int(resolution),
            depths=tuple(int(d) for d in depths),
            prune=tuple(sorted((str(k), float(v)) for k, v in prune.items())),
            precision=_precision_pairs(precision, in_order=False),
            kernel=None if kernel is None else tuple(
                sorted((str(k), _size(v)) for k, v in kernel.items())),
        )

    def with_precisions(self, precision: Mapping[str, str]) -> Candidate:
        """The same candidate at other precisions (one per layer), kept as its kind keeps them.

        A built-in candidate's layers are sorted (:meth:`make`), a graph's stay in
        the order given (:meth:`of_graph`).
        """
        return replace(self, precision=_precision_pairs(precision, in_order=self.depths is None))

    @classmethod
    def of_graph(cls, resolution: int, prune: Mapping[str, float],
                 precision: Mapping[str, str], **source: Any) -> Candidate:
        """A candidate of a model graph (a HyperModel's or a trained model's), in graph order.

        Args:
            resolution: The model's input side.
            prune: Prune ratio per prunable channel group.
            precision: Precision per conv, depthwise and dense layer.
            **source: ``hp``, ``answers`` (mappings), ``hypermodel``, ``model``,
                ``build_s``: what says which model it is.
        """
        pairs = {k: tuple(v.items()) for k, v in source.items() if k in ("hp", "answers")}
        return cls(int(resolution), None, tuple((str(k), float(v)) for k, v in prune.items()),
                   _precision_pairs(precision, in_order=True), **{**source, **pairs})

    @property
    def prune_map(self) -> dict[str, float]:
        """Fraction removed per channel group."""
        return dict(self.prune)

    @property
    def precision_map(self) -> dict[str, str]:
        """Precision per layer."""
        return dict(self.precision)

    @property
    def kernel_map(self) -> dict[str, int]:
        """Depthwise kernel per block ({} when the space offers one kernel)."""
        return dict(self.kernel or ())

    @property
    def hp_map(self) -> dict[str, Any]:
        """The HyperModel's hyperparameters ({} for other spaces)."""
        return dict(self.hp or ())

    @property
    def answers_map(self) -> dict[str, Any]:
        """The trial parameters the child rebuilds the HyperModel with."""
        return dict(self.answers)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict (what ``pareto.json`` and the trial record)."""
        out: dict[str, Any] = {"resolution": self.resolution}
        if self.depths is not None:
            out["depths"] = list(self.depths)
        if self.hp is not None:
            out["hp"] = self.hp_map
        out.update(prune=self.prune_map, precision=self.precision_map)
        if self.kernel is not None:
            out["kernel"] = self.kernel_map
        out.update({k: getattr(self, k) for k in ("hypermodel", "model")
                    if getattr(self, k) is not None})
        return out

    def request(self) -> dict[str, Any]:
        """What the evaluation child builds it from: the record, and a HyperModel's ``answers``."""
        return {**self.to_dict(), **({"answers": self.answers_map} if self.hp is not None else {})}

    def to_json(self) -> str:
        """Return a canonical JSON string (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        """Build a candidate from :meth:`to_dict` output (of any space).

        Raises:
            CodesignError: If a field is missing or of the wrong type.
        """
        try:
            if "depths" in d or not {"hp", "hypermodel", "model"} & set(d):
                cand = cls.make(d["resolution"], d["depths"], d["prune"], d["precision"],
                                d.get("kernel"))
            else:
                extra = {k: d[k] for k in ("hp", "hypermodel", "model") if k in d}
                cand = cls.of_graph(d["resolution"], d["prune"], d["precision"], **extra)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CodesignError(f"malformed candidate: {exc!r}") from None
        bad = sorted({p for _, p in cand.precision} - set(PRECISIONS))
        if bad:
            raise CodesignError(f"malformed candidate: precisions {bad} not in {PRECISIONS}")
        return cand


def _size(value: object) -> int:
    """A kernel size as an int (refusing what is not a whole number)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"kernel size {value!r} is not an integer")
    return int(value)


def _precision_pairs(precision: Mapping[str, str], in_order: bool) -> tuple[tuple[str, str], ...]:
    """``(layer, precision)`` pairs: in the order given (a graph's), else sorted (built-in)."""
    pairs = ((str(k), str(v)) for k, v in precision.items())
    return tuple(pairs) if in_order else tuple(sorted(pairs))
