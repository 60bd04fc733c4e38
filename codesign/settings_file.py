"""``codesign search --config FILE.toml``: a search's settings kept in a file.

Every key is a flag of ``codesign search`` without its ``--`` (``trials``,
``max-latency-ms``; ``max_latency_ms`` is read the same); flags given on the
command line override the file. Relative paths in the file (``out``, ``space``,
``data``, ``val-data``, ``model``, ``hypermodel``, a ``profile`` file) are
relative to the file's directory. A search writes the settings it resolved to
``RUN/config.toml`` (``out = "."``, ``space = "space.toml"``), which
``--config`` takes back: ``codesign search --config RUN/config.toml`` resumes
the run, and ``--out`` elsewhere repeats it.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codesign.errors import CodesignError
from codesign.tomlfile import dumps, read_toml

if TYPE_CHECKING:
    from codesign.space.family import SpaceSpec

CONFIG_TOML = "config.toml"


@dataclass(frozen=True)
class Setting:
    """One key of a settings file.

    Attributes:
        key: The flag without ``--``.
        kind: ``int``, ``float``, ``str``, ``bool``, ``path`` (relative to the
            file), ``data`` (a data set name or a path), ``objectives`` (a
            comma-separated string or a list of names).
        choices: The values allowed (empty: any of the kind).
    """

    key: str
    kind: str
    choices: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        """The attribute of the parsed arguments."""
        return self.key.replace("-", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("data", "data"), Setting("out", "path"), Setting("trials", "int"),
    Setting("seed", "int"), Setting("profile", "profile"), Setting("space", "space"),
    Setting("sampler", "str", ("nsga2", "tpe", "random")), Setting("objectives", "objectives"),
    Setting("max-latency-ms", "float"), Setting("max-size-kb", "float"),
    Setting("max-ram-kb", "float"), Setting("max-flash-kb", "float"),
    Setting("min-accuracy", "float"), Setting("epochs", "int"), Setting("timeout", "float"),
    Setting("quality-samples", "int"), Setting("finetune-epochs", "int"),
    Setting("latency", "str", ("measured", "predicted", "hybrid")),
    Setting("accuracy", "str", ("measured", "predicted", "hybrid")),
    Setting("predictor-float-samples", "int"), Setting("predictor-quant-samples", "int"),
    Setting("predictor-screen-samples", "int"),
    Setting("time-budget-min", "float"), Setting("inner-trials", "int"),
    Setting("workers", "int"), Setting("storage", "str"), Setting("study", "str"),
    Setting("hypermodel", "hypermodel"), Setting("model", "path"), Setting("val-data", "path"),
    Setting("input-scale", "float"), Setting("input-offset", "float"),
    Setting("max-accuracy-drop", "float"), Setting("search-resolution", "bool"),
    Setting("prune-criterion", "str", ("l1", "bn")), Setting("candidate-epochs", "int"),
    Setting("trial-finetune-images", "int"),
    Setting("no-report", "bool"), Setting("no-references", "bool"),
)
BY_KEY = {s.key: s for s in SETTINGS}
DESTS = tuple(s.dest for s in SETTINGS)
PLACED = ("path", "data", "space", "profile", "hypermodel")  # kinds that may name a file
KIND_WORDS = {"int": "an integer", "float": "a number", "bool": "true or false",
              "objectives": 'a string ("accuracy,latency") or a list of names'}


class _Problem(Exception):
    """A key's problem, before the file's name is put in front."""


def load_settings(path: Path) -> dict[str, Any]:
    """Read a settings file: parsed-argument attribute -> value (paths made absolute).

    Raises:
        CodesignError: In one line naming the file and the key, on a missing
            file, a TOML syntax error, an unknown key or a value of the wrong type.
    """
    doc = read_toml(path, "config file")
    base = path.resolve().parent
    out: dict[str, Any] = {}
    try:
        for raw, value in doc.items():
            setting = _setting(raw)
            out[setting.dest] = _value(setting, value, base)
    except _Problem as exc:
        raise CodesignError(f"config file {path}: {exc}") from None
    return out


def apply_settings(args: argparse.Namespace, given: Iterable[str]) -> None:
    """Put the ``--config`` file's settings into ``args`` where no flag gave one.

    Sets ``args.from_config`` to the attributes the file set (for messages). A
    ``false`` switch (``no-report = false``) is a flag not given.

    Args:
        args: ``codesign search``'s parsed arguments (``args.config`` names the file).
        given: The attributes given as flags on the command line.
    """
    given = set(given)
    values = load_settings(args.config)
    taken = {dest: v for dest, v in values.items() if dest not in given and v is not False}
    for dest, value in taken.items():
        setattr(args, dest, value)
    args.from_config = set(taken)


def origin_note(message: str, args: argparse.Namespace) -> str:
    """``message``, saying which file set the flag it starts with, when a file did."""
    first = message.split(" ", 1)[0].strip("'\",:")
    dest = first[2:].replace("-", "_") if first.startswith("--") else ""
    if dest and dest in getattr(args, "from_config", ()):
        return f"{message} (set by {first[2:]} in {args.config})"
    return message


def settings_doc(args: argparse.Namespace, resolved: dict[str, Any] | None = None,
                 skip: Iterable[str] = ()) -> dict[str, Any]:
    """The settings of a search as a settings file holds them (None values left out).

    Args:
        args: The parsed (and merged) arguments; their relative paths are made
            absolute against the working directory.
        resolved: Values that replace the arguments' (keyed by attribute, written
            as they are), such as the epochs and latency mode a pre-flight chose.
        skip: Attributes left out (settings of another kind of search).
    """
    from codesign.run.storage import without_password

    resolved = resolved or {}
    skip = set(skip)
    doc: dict[str, Any] = {"out": "."}
    for s in SETTINGS:
        if s.dest in skip or s.dest == "out":
            continue
        if s.dest in resolved:
            value = resolved[s.dest]
        else:
            value = getattr(args, s.dest, None)
            if isinstance(value, str | Path) and s.kind in PLACED:
                value = _place(s, str(value), Path.cwd())
        if value is None or (s.kind == "bool" and value is False):
            continue
        if s.dest == "storage":
            value = without_password(value)
        doc[s.key] = str(value) if isinstance(value, Path) else value
    return doc


def write_settings(root: Path, doc: dict[str, Any]) -> Path:
    """Write ``RUN/config.toml`` (``--config`` accepts it)."""
    from codesign.run.files import write_atomic

    path = root / CONFIG_TOML
    header = ("The settings this run was made with, as resolved. codesign search --config\n"
              f"{path} resumes the run; add --out DIR to run it again elsewhere.\n"
              "Relative paths are relative to this file's directory.")
    write_atomic(path, dumps(doc, header))
    return path


# --- checking ----------------------------------------------------------------------------

def _setting(raw: str) -> Setting:
    key = raw.replace("_", "-")
    if key in BY_KEY:
        return BY_KEY[key]
    close = difflib.get_close_matches(key, list(BY_KEY), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise _Problem(f"unknown setting {raw!r}{hint}; settings are the flags of codesign search: "
                   f"{', '.join(BY_KEY)}")


def _value(s: Setting, value: Any, base: Path) -> Any:
    if isinstance(value, dict):
        raise _Problem(f"{s.key} must be {_want(s)}, got a table")
    if s.kind in ("int", "float"):
        number = isinstance(value, int) and not isinstance(value, bool)
        if not (number or (s.kind == "float" and isinstance(value, float))):
            raise _Problem(f"{s.key} must be {_want(s)}, got {value!r}")
        return float(value) if s.kind == "float" else int(value)
    if s.kind == "bool":
        if not isinstance(value, bool):
            raise _Problem(f"{s.key} must be true or false, got {value!r}")
        return value
    if s.kind == "objectives":
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return ",".join(value)
        if not isinstance(value, str):
            raise _Problem(f"objectives must be {KIND_WORDS['objectives']}, got {value!r}")
        return value
    if not isinstance(value, str) or not value:
        raise _Problem(f"{s.key} must be {_want(s)}, got {value!r}")
    if s.choices and value not in s.choices:
        raise _Problem(f"{s.key} must be one of {', '.join(s.choices)}, got {value!r}")
    return _place(s, value, base)


def _want(s: Setting) -> str:
    if s.choices:
        return f"one of {', '.join(s.choices)}"
    return KIND_WORDS.get(s.kind, "a string")


def _place(s: Setting, value: str, base: Path) -> Any:
    """A path value made absolute against the file's directory; names stay names."""
    if s.kind == "path":
        return base / value if s.key == "out" else str(base / value)
    if s.kind == "data":
        from codesign.data import BUILTIN_DATASETS, KERAS_DATASETS

        return value if value in (*BUILTIN_DATASETS, *KERAS_DATASETS) else str(base / value)
    if s.kind in ("space", "profile"):
        return str(base / value) if value.endswith(".toml") else value
    if s.kind == "hypermodel":
        file, sep, name = value.rpartition(":")
        return f"{base / file}:{name}" if sep and file.endswith(".py") else value
    return value


BUILTIN_ONLY = ("space", "accuracy", "latency", "predictor_float_samples",
                "predictor_quant_samples", "predictor_screen_samples", "inner_trials",
                "quality_samples", "epochs")
OWN_MODEL_ONLY = ("hypermodel", "model", "val_data", "input_scale", "input_offset",
                  "max_accuracy_drop", "search_resolution", "prune_criterion", "candidate_epochs",
                  "trial_finetune_images")


@contextmanager
def kept_in_run(args: argparse.Namespace, resolved: dict[str, Any] | None = None,
                space: SpaceSpec | None = None) -> Iterator[None]:
    """Around a search: write ``RUN/config.toml`` (and ``RUN/space.toml``) for it.

    They are written as soon as the run directory accepted the settings, before
    any work: a new run, or a resume with the same settings (so a killed run
    has them too; a resume refused for other settings leaves them as they were).

    Args:
        args: The parsed (and merged) arguments.
        resolved: Values a pre-flight resolved (see :func:`settings_doc`).
        space: The built-in space searched (None: a HyperModel's or a trained model's search).
    """
    from codesign.run.directory import when_accepted

    def write(root: Path) -> None:
        skip = OWN_MODEL_ONLY if space is not None else BUILTIN_ONLY
        try:
            if space is not None:
                from codesign.run.runspace import keep_space

                keep_space(root, space)
            write_settings(root, settings_doc(args, resolved, skip))
        except OSError as exc:
            print(f"codesign: {root / CONFIG_TOML} not written ({exc})", file=sys.stderr)

    with when_accepted(write):
        yield
