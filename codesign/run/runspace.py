"""The space a run directory was made with: kept as ``RUN/space.toml``, used when it resumes.

A built-in search records its space in ``RUN/config.json`` (the settings a
resume must match) and, as a file ``--space`` accepts, in ``RUN/space.toml``.
Resumed without ``--space``, a run searches the space it was made with, even
if the preset of that name has changed since; with a ``--space`` that
differs, it is refused in one line that says where they differ.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from codesign.errors import CodesignError
from codesign.run.directory import _first_difference, _short
from codesign.run.files import write_atomic
from codesign.space.family import SpaceSpec
from codesign.space.files import (
    PRESETS,
    is_space_file,
    load_space_file,
    resolve_space,
    space_doc,
    space_from_dict,
    space_toml,
)

SPACE_FILE = "space.toml"
DEFAULT_SPACE = "default"


def saved_space(root: Path) -> SpaceSpec | None:
    """The space a run was made with (None: no built-in search was started there).

    ``RUN/space.toml`` when it exists, else the space in ``RUN/config.json``
    (a run made before spaces were files, or one still in its first minutes).

    Raises:
        CodesignError: If the run holds a space this version cannot read.
    """
    if (root / SPACE_FILE).is_file():
        return load_space_file(root / SPACE_FILE)
    config = root / "config.json"
    if not config.is_file():
        return None
    try:
        identity = json.loads(config.read_text()).get("identity", {})
    except (OSError, ValueError, AttributeError):
        return None  # RunDir.check_settings says it is unreadable
    if not isinstance(identity, dict) or "space" not in identity:
        return None  # a HyperModel's or a trained model's run
    return space_from_dict(identity["space"], str(config))


def resume_space(root: Path, asked: str | None,
                 fit: Callable[[SpaceSpec], SpaceSpec] | None = None) -> tuple[str, SpaceSpec]:
    """The space a search of ``root`` uses: the asked one, or the run's own when resumed.

    Args:
        root: The run directory.
        asked: ``--space`` as given (a flag or in ``--config``); None when not given.
        fit: Fits a preset to the data (:func:`codesign.space.fit.fit_space`);
            called only when a preset is searched anew or compared with the
            run's own (None: presets as shipped).

    Returns:
        ``(what --space names, the space)``: the run's own space when it is
        resumed without ``--space`` (named as a preset when it still is one,
        else by ``RUN/space.toml``), else the asked space (``default`` when none).

    Raises:
        CodesignError: If the asked space is unknown or malformed, or differs
            from the one the run was made with.
    """
    saved = saved_space(root)

    def wanted(text: str) -> SpaceSpec:
        space = resolve_space(text)
        return fit(space) if fit is not None and not is_space_file(text) else space

    if saved is None:
        text = asked or DEFAULT_SPACE
        return text, wanted(text)
    if asked is None:
        keep_space(root, saved)  # an older run gets its file now
        same = PRESETS.get(saved.name) == saved
        return (saved.name if same else str(root / SPACE_FILE)), saved
    space = wanted(asked)
    diff = _first_difference(space_doc(saved), space_doc(space))
    if diff is not None:
        key, old, new = diff
        raise CodesignError(
            f"{root} was made with a different space ({saved.name!r}, kept in "
            f"{root / SPACE_FILE}): --space {asked} has {key} {_short(new)} where the run has "
            f"{_short(old)}; drop --space to resume it, or use another --out"
        )
    return asked, saved


def keep_space(root: Path, space: SpaceSpec) -> None:
    """Write ``RUN/space.toml`` once (it never changes for a run)."""
    path = root / SPACE_FILE
    if root.is_dir() and not path.is_file():
        write_atomic(path, space_toml(space, f"The search space of this run ({space.name!r}). "
                                      "A resumed run uses it; codesign search --space\n"
                                      f"{path} searches it anew elsewhere."))
