"""The candidate: a frozen, serializable point of the search space."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from codesign.errors import CodesignError

PRECISIONS = ("float32", "float16", "int8", "int16x8", "int4")


@dataclass(frozen=True)
class Candidate:
    """One network of the space, as the sampler proposed it.

    Attributes:
        resolution: Input height and width in pixels.
        depths: Number of blocks used in each stage.
        prune: ``(channel group, fraction of channels removed)`` for every
            channel group of the maximal network, sorted by group.
        precision: ``(layer, precision)`` for every conv, depthwise and dense
            layer of the maximal network, sorted by layer.
    """

    resolution: int
    depths: tuple[int, ...]
    prune: tuple[tuple[str, float], ...]
    precision: tuple[tuple[str, str], ...]

    @classmethod
    def make(
        cls,
        resolution: int,
        depths: tuple[int, ...] | list[int],
        prune: Mapping[str, float],
        precision: Mapping[str, str],
    ) -> Candidate:
        """Build a candidate from plain mappings."""
        return cls(
            resolution=int(resolution),
            depths=tuple(int(d) for d in depths),
            prune=tuple(sorted((str(k), float(v)) for k, v in prune.items())),
            precision=tuple(sorted((str(k), str(v)) for k, v in precision.items())),
        )

    @property
    def prune_map(self) -> dict[str, float]:
        """Fraction removed per channel group."""
        return dict(self.prune)

    @property
    def precision_map(self) -> dict[str, str]:
        """Precision per layer."""
        return dict(self.precision)

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        return {
            "resolution": self.resolution,
            "depths": list(self.depths),
            "prune": self.prune_map,
            "precision": self.precision_map,
        }

    def to_json(self) -> str:
        """Return a canonical JSON string (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Candidate:
        """Build a candidate from :meth:`to_dict` output.

        Raises:
            CodesignError: If a field is missing or of the wrong type.
        """
        try:
            cand = cls.make(d["resolution"], d["depths"], d["prune"], d["precision"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CodesignError(f"malformed candidate: {exc!r}") from None
        bad = sorted({p for _, p in cand.precision} - set(PRECISIONS))
        if bad:
            raise CodesignError(f"malformed candidate: precisions {bad} not in {PRECISIONS}")
        return cand
