"""The op-support table: which precision each layer kind runs with on a runtime.

The table (``op_support.toml`` beside this module) is data, keyed by runtime,
version and op resolver; a profile's search space offers a layer only the
precisions its runtime runs for that layer's kind.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from codesign.errors import CodesignError
from codesign.space.family import LAYER_KINDS, SpaceSpec

TABLE = Path(__file__).with_name("op_support.toml")


@dataclass(frozen=True)
class Support:
    """What one runtime (version, resolver) runs.

    Attributes:
        runtime: Runtime package name.
        version: Runtime version.
        resolver: Op resolver.
        runs: Layer kind -> precisions that run.
        delegated: Precisions the delegate takes (others fall back to kernels).
    """

    runtime: str
    version: str
    resolver: str
    runs: dict[str, tuple[str, ...]]
    delegated: tuple[str, ...]


def load_table(path: Path = TABLE) -> list[Support]:
    """Every entry of the table."""
    raw = tomllib.loads(path.read_text())
    return [
        Support(
            runtime=e["runtime"],
            version=e["version"],
            resolver=e["resolver"],
            runs={k: tuple(e[k]) for k in LAYER_KINDS},
            delegated=tuple(e.get("delegated", ())),
        )
        for e in raw["entry"]
    ]


def lookup(runtime: str, version: str, resolver: str) -> Support:
    """The entry for a runtime, version and resolver.

    Raises:
        CodesignError: If the table has no such entry.
    """
    for s in load_table():
        if (s.runtime, s.version, s.resolver) == (runtime, version, resolver):
            return s
    known = ", ".join(sorted({f"{s.runtime} {s.version}" for s in load_table()}))
    raise CodesignError(
        f"no op-support entry for {runtime} {version} ({resolver}); known: {known}; "
        f"measure it with tools/op_support.py and add it to {TABLE}"
    )


def layer_choices(
    space: SpaceSpec, support: Support, allowed: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    """Precisions offered to each layer: the runtime runs them, profile and space allow them.

    Raises:
        CodesignError: If some layer would have no precision at all.
    """
    out = {}
    for layer, kind in space.layer_kinds().items():
        choices = tuple(
            p for p in space.precisions if p in support.runs[kind] and p in allowed
        )
        if not choices:
            raise CodesignError(
                f"no precision for {kind} layers: the runtime runs {support.runs[kind]}, "
                f"the profile allows {allowed}"
            )
        out[layer] = choices
    return out
