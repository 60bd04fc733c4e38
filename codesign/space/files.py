"""Spaces as files: the TOML form of a :class:`~codesign.space.family.SpaceSpec`.

``codesign search --space FILE.toml`` reads one; the shipped presets
(``default``, ``tiny``) are such files in ``codesign/space/presets/``. A file
holds every field of the family (top-level keys) and one ``[[stages]]`` table
per stage::

    name = "mine"                 # optional: the file's stem
    stem_channels = 16            # a multiple of 4
    stem_stride = 1               # 1 or 2
    head_channels = 128
    kernels = [3, 5, 7]           # depthwise kernels a block may use: of 3, 5, 7
    resolutions = [24, 28, 32]    # input pixels the search may choose
    prune_ratios = [0.0, 0.25, 0.5, 0.75]
    precisions = ["float32", "float16", "int8", "int16x8", "int4"]

    [[stages]]
    channels = 16
    min_depth = 1
    max_depth = 2
    stride = 2
    expand = 1

A malformed file is refused in one line naming the field and what it may be.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError
from codesign.space.candidate import PRECISIONS
from codesign.space.family import CHANNEL_DIVISOR, SpaceSpec, StageSpec
from codesign.tomlfile import dumps, read_toml

PRESET_DIR = Path(__file__).parent / "presets"
SPACE_KEYS = ("name", "stem_channels", "stem_stride", "head_channels", "kernels", "resolutions",
              "prune_ratios", "precisions", "stages")
STAGE_KEYS = ("channels", "min_depth", "max_depth", "stride", "expand")
KERNELS = (3, 5, 7)
STRIDES = (1, 2)
MAX_STAGES = 8
MAX_DEPTH = 8
MAX_EXPAND = 8
MAX_CHANNELS = 1024
MIN_RESOLUTION, MAX_RESOLUTION = 8, 512
NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


class _Problem(Exception):
    """A field's problem, before the file's name is put in front."""


def parse_space(doc: dict[str, Any], default_name: str) -> SpaceSpec:
    """Build a space from a parsed space file, checking every field.

    Args:
        doc: The parsed TOML document.
        default_name: The name when the file gives none (its stem).

    Returns:
        The space.

    Raises:
        CodesignError: On the first bad field, naming it and its allowed values.
    """
    try:
        return _parse(doc, default_name)
    except _Problem as exc:
        raise CodesignError(str(exc)) from None


def load_space_file(path: Path) -> SpaceSpec:
    """Read and check a space file.

    Raises:
        CodesignError: In one line, if the file is missing, not TOML or malformed.
    """
    doc = read_toml(path, "space file")
    try:
        return _parse(doc, path.stem)
    except _Problem as exc:
        raise CodesignError(f"space file {path}: {exc}") from None


def space_doc(space: SpaceSpec) -> dict[str, Any]:
    """A space as its file holds it: every key of :data:`SPACE_KEYS`, lists as lists."""
    doc = json.loads(json.dumps(space.to_dict()))
    doc.pop("kernel", None)
    doc["kernels"] = list(space.kernels)
    doc["prune_ratios"] = [float(r) for r in space.prune_ratios]
    return {k: doc[k] for k in SPACE_KEYS}


def space_toml(space: SpaceSpec, header: str = "") -> str:
    """The space file of ``space`` (:func:`load_space_file` reads it back equal)."""
    return dumps(space_doc(space), header or f"codesign search space {space.name!r} (codesign "
                 "search --space FILE.toml; see README)")


def load_presets() -> dict[str, SpaceSpec]:
    """The shipped presets, by name (``codesign/space/presets/*.toml``)."""
    presets = {}
    for path in sorted(PRESET_DIR.glob("*.toml")):
        space = load_space_file(path)
        presets[space.name] = space
    return dict(sorted(presets.items(), key=lambda kv: kv[0] != "default"))


def preset(name: str) -> SpaceSpec:
    """The shipped preset called ``name``.

    Raises:
        CodesignError: If there is no such preset.
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise CodesignError(
            f"unknown space {name!r}; use one of: {', '.join(PRESETS)}, or a FILE.toml"
        ) from None


def is_space_file(text: str) -> bool:
    """Whether ``--space`` names a file rather than a preset."""
    return text not in PRESETS and (text.endswith(".toml") or Path(text).is_file())


def resolve_space(text: str) -> SpaceSpec:
    """The space ``--space`` names: a preset or a space file.

    Raises:
        CodesignError: On an unknown preset or a bad file.
    """
    return load_space_file(Path(text)) if is_space_file(text) else preset(text)


def space_from_dict(d: Any, where: str) -> SpaceSpec:
    """Rebuild a space from :meth:`SpaceSpec.to_dict` (a run's saved settings).

    Raises:
        CodesignError: If ``d`` is not a space this version knows, saying where it came from.
    """
    if not isinstance(d, dict):
        raise CodesignError(f"{where} holds no search space")
    d = json.loads(json.dumps(d))  # tuples as lists, as in a file
    try:
        return _parse(d, str(d.get("name", "saved")))
    except _Problem as exc:
        raise CodesignError(f"{where} holds a space this codesign cannot use ({exc})") from None


def space_of(value: str | dict[str, Any]) -> SpaceSpec:
    """A space from a preset's name or a file's path, or from :meth:`SpaceSpec.to_dict`."""
    return resolve_space(value) if isinstance(value, str) else space_from_dict(value, "the search")


# --- checking ----------------------------------------------------------------------------

def _parse(doc: dict[str, Any], default_name: str) -> SpaceSpec:
    if "kernel" in doc:  # a file of codesign before kernels were elastic: one kernel
        if "kernels" in doc:
            raise _Problem("give kernels (a list) or the older kernel (one size), not both")
        size = _choice("kernel", doc["kernel"], KERNELS)
        doc = {**{k: v for k, v in doc.items() if k != "kernel"}, "kernels": [size]}
    _known(doc, SPACE_KEYS, "")
    for key in SPACE_KEYS[1:]:
        if key not in doc:
            raise _Problem(f"{key} is missing (a space needs {', '.join(SPACE_KEYS[1:])})")
    name = doc.get("name", default_name)
    if not isinstance(name, str) or not NAME.match(name):
        raise _Problem(f"name must be 1 to 40 letters, digits, '.', '_' or '-', got {name!r}")
    stages = doc["stages"]
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages) \
            or not 1 <= len(stages) <= MAX_STAGES:
        raise _Problem(f"stages must be 1 to {MAX_STAGES} [[stages]] tables, got "
                       f"{_show(stages)}")
    return SpaceSpec(
        name=name,
        stem_channels=_channels("stem_channels", doc["stem_channels"]),
        stem_stride=_choice("stem_stride", doc["stem_stride"], STRIDES),
        stages=tuple(_stage(i, s) for i, s in enumerate(stages, start=1)),
        head_channels=_channels("head_channels", doc["head_channels"]),
        kernels=_kernels(doc["kernels"]),
        resolutions=_resolutions(doc["resolutions"]),
        prune_ratios=_prune_ratios(doc["prune_ratios"]),
        precisions=_precisions(doc["precisions"]),
    )


def _stage(i: int, st: dict[str, Any]) -> StageSpec:
    where = f"stages[{i}]."
    _known(st, STAGE_KEYS, where)
    for key in STAGE_KEYS:
        if key not in st:
            raise _Problem(f"{where}{key} is missing (a stage needs {', '.join(STAGE_KEYS)})")
    min_depth = _int(f"{where}min_depth", st["min_depth"], 1, MAX_DEPTH)
    return StageSpec(
        channels=_channels(f"{where}channels", st["channels"]),
        min_depth=min_depth,
        max_depth=_int(f"{where}max_depth", st["max_depth"], min_depth, MAX_DEPTH,
                       " (at least its min_depth)"),
        stride=_choice(f"{where}stride", st["stride"], STRIDES),
        expand=_int(f"{where}expand", st["expand"], 1, MAX_EXPAND, " (1: no expand conv)"),
    )


def _known(doc: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    unknown = [k for k in doc if k not in keys]
    if unknown:
        raise _Problem(f"unknown key {where}{unknown[0]}; use: {', '.join(keys)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(where: str, value: Any, low: int, high: int, note: str = "") -> int:
    if not _is_int(value) or not low <= value <= high:
        raise _Problem(f"{where} must be an integer from {low} to {high}{note}, got "
                       f"{_show(value)}")
    return int(value)


def _channels(where: str, value: Any) -> int:
    if not _is_int(value) or not CHANNEL_DIVISOR <= value <= MAX_CHANNELS \
            or value % CHANNEL_DIVISOR:
        raise _Problem(f"{where} must be a multiple of {CHANNEL_DIVISOR} from {CHANNEL_DIVISOR} "
                       f"to {MAX_CHANNELS}, got {_show(value)}")
    return int(value)


def _choice(where: str, value: Any, allowed: tuple[int, ...]) -> int:
    if not _is_int(value) or value not in allowed:
        raise _Problem(f"{where} must be one of {', '.join(map(str, allowed))}, got "
                       f"{_show(value)}")
    return int(value)


def _distinct_list(where: str, value: Any, what: str) -> list[Any]:
    if not isinstance(value, list) or not value or len(set(map(repr, value))) != len(value):
        raise _Problem(f"{where} must be a non-empty list of distinct {what}, got {_show(value)}")
    return value


def _resolutions(value: Any) -> tuple[int, ...]:
    what = f"integers from {MIN_RESOLUTION} to {MAX_RESOLUTION} (pixels)"
    items = _distinct_list("resolutions", value, what)
    if not all(_is_int(r) and MIN_RESOLUTION <= r <= MAX_RESOLUTION for r in items):
        raise _Problem(f"resolutions must be a non-empty list of distinct {what}, got "
                       f"{_show(value)}")
    return tuple(int(r) for r in items)


def _kernels(value: Any) -> tuple[int, ...]:
    what = f"depthwise kernel sizes of {', '.join(map(str, KERNELS))}"
    items = _distinct_list("kernels", value, what)
    if not all(_is_int(k) and k in KERNELS for k in items):
        raise _Problem(f"kernels must be a non-empty list of distinct {what}, got {_show(value)}")
    return tuple(sorted(int(k) for k in items))


def _prune_ratios(value: Any) -> tuple[float, ...]:
    what = "fractions from 0.0 to below 1.0 holding 0.0 (the unpruned width)"
    items = _distinct_list("prune_ratios", value, what)
    ok = all(isinstance(r, int | float) and not isinstance(r, bool) and 0.0 <= r < 1.0
             for r in items)
    if not ok or 0.0 not in items or len({float(r) for r in items}) != len(items):
        raise _Problem(f"prune_ratios must be a non-empty list of distinct {what}, got "
                       f"{_show(value)}")
    return tuple(float(r) for r in items)


def _precisions(value: Any) -> tuple[str, ...]:
    what = f"precisions holding float32, of: {', '.join(PRECISIONS)}"
    items = _distinct_list("precisions", value, what)
    if not all(isinstance(p, str) and p in PRECISIONS for p in items) or "float32" not in items:
        raise _Problem(f"precisions must be a non-empty list of distinct {what}, got "
                       f"{_show(value)}")
    return tuple(items)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list) and any(isinstance(v, dict) for v in value):
        return f"{len(value)} tables" if all(isinstance(v, dict) for v in value) else "a mixed list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


PRESETS: dict[str, SpaceSpec] = load_presets()  # after the checks it runs
