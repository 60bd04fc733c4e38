"""The candidate: a frozen, serializable point of the search space."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from codesign.errors import CodesignError

PRECISIONS = ("float32", "int8")


@dataclass(frozen=True)
class Candidate:
    """One network of the space, as the sampler proposed it.

    Attributes:
        resolution: Input height and width in pixels.
        depths: Number of blocks used in each stage.
        width: Global width multiplier applied to every layer's channels.
        precision: Precision of the whole network (``float32`` or ``int8``).
    """

    resolution: int
    depths: tuple[int, ...]
    width: float
    precision: str

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        d = asdict(self)
        d["depths"] = list(self.depths)
        return d

    def to_json(self) -> str:
        """Return a canonical JSON string (sorted keys)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Candidate:
        """Build a candidate from :meth:`to_dict` output.

        Raises:
            CodesignError: If a field is missing or of the wrong type.
        """
        try:
            cand = cls(
                resolution=int(d["resolution"]),
                depths=tuple(int(v) for v in d["depths"]),
                width=float(d["width"]),
                precision=str(d["precision"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CodesignError(f"malformed candidate {d!r}: {exc}") from None
        if cand.precision not in PRECISIONS:
            raise CodesignError(
                f"malformed candidate: precision {cand.precision!r} is not one of {PRECISIONS}"
            )
        return cand
