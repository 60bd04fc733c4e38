"""Reading a finished run directory into plain records for the report.

Only JSON files and the SQLite study are read; nothing here imports
TensorFlow, so a report takes seconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError
from codesign.report.pareto import READABLE_TEXT, read_pareto  # schemas of pareto.json it reads

METRIC_NAMES = {"accuracy": "val_accuracy", "latency": "latency_ms", "size": "size_kb",
                "ram": "ram_kb", "flash": "flash_kb"}


@dataclass(frozen=True)
class TrialRecord:
    """What the report needs of one trial of the study.

    Attributes:
        number: Trial number.
        state: ``COMPLETE``, ``FAIL``, ``RUNNING``, ``WAITING`` or ``PRUNED``.
        values: Objective values (empty unless COMPLETE).
        attrs: The trial's user attributes.
        feasible: Whether every budget constraint is met.
        seconds: Wall-clock duration, when known.
    """

    number: int
    state: str
    values: tuple[float, ...]
    attrs: dict[str, Any]
    feasible: bool
    seconds: float | None

    @property
    def complete(self) -> bool:
        """Whether the trial finished with objective values."""
        return self.state == "COMPLETE"

    @property
    def latency_measured(self) -> bool:
        """Whether its latency was timed (not a prediction kept by ``--latency``)."""
        lat = self.attrs.get("latency_ms") or {}
        return lat.get("source", "measured") != "predicted"


@dataclass
class RunData:
    """Everything one run directory holds that the report shows.

    Attributes:
        root: The run directory, as the user gave it.
        label: Name of the run in the report (``--label``, else the directory's name).
        pareto: The ``pareto.json`` document.
        config: ``config.json`` (the settings that identify the run).
        study_attrs: The study's user attributes (settings, data, profile).
        directions: ``maximize``/``minimize`` per objective.
        metric_names: Name per objective.
        trials: Every trial of the study, by number.
        fidelity: ``predictor_fidelity.json``, if the run trained an accuracy predictor.
        noise_floor: ``noise_floor.json``, if measured.
        quality: ``supernet_quality.json``, if computed.
        supernet: ``supernet.json`` (training settings and seconds), if present.
        extras: Objects loaded on the way (``study``: the Optuna study).
    """

    root: Path
    label: str
    pareto: dict[str, Any]
    config: dict[str, Any]
    study_attrs: dict[str, Any]
    directions: list[str]
    metric_names: list[str]
    trials: list[TrialRecord]
    fidelity: dict[str, Any] | None = None
    noise_floor: dict[str, Any] | None = None
    quality: dict[str, Any] | None = None
    supernet: dict[str, Any] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def points(self) -> list[dict[str, Any]]:
        """The Pareto points of ``pareto.json``, by ascending latency."""
        return list(self.pareto.get("points", []))

    @property
    def references(self) -> list[dict[str, Any]]:
        """The reference networks (maximal float32 and int8)."""
        return list(self.pareto.get("references", []))

    @property
    def run_info(self) -> dict[str, Any]:
        """The ``run`` section of ``pareto.json``."""
        return dict(self.pareto.get("run", {}))

    @property
    def profile_name(self) -> str:
        """The profile's name."""
        return str(self.run_info.get("profile", {}).get("name", "?"))

    @property
    def complete(self) -> list[TrialRecord]:
        """COMPLETE trials by number."""
        return [t for t in self.trials if t.complete]


def load_run(path: Path, label: str | None = None) -> RunData:
    """Read a run directory written by ``codesign search``.

    Args:
        path: The run directory.
        label: Its name in the report (default: the directory's name).

    Returns:
        The run's records.

    Raises:
        CodesignError: If ``path`` is not a finished run, or its ``pareto.json``
            has a schema version this report does not read.
    """
    root = Path(path)
    if not root.is_dir():
        raise CodesignError(f"{root} is not a directory; pass a run directory of codesign search")
    pareto_file = root / "pareto.json"
    if not pareto_file.is_file():
        hint = ("the search has not finished; rerun codesign search with the same --out"
                if (root / "config.json").is_file() else "pass the --out of codesign search")
        raise CodesignError(f"{root} has no pareto.json; {hint}")
    pareto = _read_json(pareto_file)
    if not isinstance(pareto, dict):
        raise CodesignError(f"{pareto_file} is not a pareto.json document; rerun codesign search")
    try:
        pareto = read_pareto(pareto)
    except ValueError:
        raise CodesignError(
            f"{pareto_file} has schema_version {pareto.get('schema_version')!r}; this report "
            f"reads schema versions {READABLE_TEXT}: rerun codesign search "
            "with this codesign, or use the codesign that wrote it"
        ) from None
    from codesign.run.directory import RunDir

    if not RunDir(root).study_db.is_file():
        raise CodesignError(f"{root} has pareto.json but no study (study.db); copy the whole "
                            "run directory, or rerun codesign search")
    study = open_study(root)
    attrs, directions, names, trials = _read_study(study)
    return RunData(
        root=root,
        label=label or root.resolve().name,
        pareto=pareto,
        config=_optional_json(root / "config.json") or {},
        study_attrs=attrs,
        directions=directions,
        metric_names=names,
        trials=trials,
        fidelity=_optional_json(root / "predictor_fidelity.json"),
        noise_floor=_optional_json(root / "noise_floor.json"),
        quality=_optional_json(root / "supernet_quality.json"),
        supernet=_optional_json(root / "supernet.json"),
        extras={"study": study},
    )


def open_study(root: Path) -> Any:
    """The run's Optuna study, wherever the run keeps it (SQLite, journal or server).

    Raises:
        CodesignError: If there is no codesign study there or it is unreadable.
    """
    import optuna

    from codesign.run.directory import RunDir
    from codesign.run.study import load_study

    optuna.logging.set_verbosity(logging.WARNING)
    try:
        return load_study(RunDir(Path(root)).storage_url)
    except CodesignError:
        raise
    except Exception as exc:  # a damaged file: SQLAlchemy's or the journal's errors
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CodesignError(f"the study of {root} is unreadable ({first}); rerun codesign "
                            "search") from None


def dashboard_target(root: Path) -> str:
    """What to pass to ``optuna-dashboard`` to browse the run's study."""
    from codesign.run.directory import RunDir

    held = RunDir(Path(root)).study_db
    if held.name == "study.db":
        return f"sqlite:///{held}"
    if held.suffix == ".journal":
        return str(held)
    return f"the server named in {held}"


def _read_study(study: Any) -> tuple[dict[str, Any], list[str], list[str], list[TrialRecord]]:
    """Study attributes, directions, metric names and trials of an Optuna study."""
    import optuna
    from optuna.trial import TrialState

    with_values = (TrialState.COMPLETE,)
    trials = []
    for t in study.get_trials(deepcopy=False):
        seconds = None
        if t.datetime_start is not None and t.datetime_complete is not None:
            seconds = (t.datetime_complete - t.datetime_start).total_seconds()
        trials.append(TrialRecord(
            number=t.number,
            state=t.state.name,
            values=tuple(t.values) if t.state in with_values and t.values else (),
            attrs=dict(t.user_attrs),
            feasible=all(v <= 0 for v in t.constraints.values()),
            seconds=seconds,
        ))
    directions = [
        "maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize"
        for d in study.directions
    ]
    names = list(study.metric_names or _metric_names(study.user_attrs, len(directions)))
    return dict(study.user_attrs), directions, names, trials


def _metric_names(attrs: dict[str, Any], n: int) -> list[str]:
    """Objective names of a study that did not record them (runs of older codesign)."""
    objectives = (attrs.get("settings") or {}).get("objectives") or ["accuracy", "latency",
                                                                      "size"][:n]
    return [METRIC_NAMES.get(o, str(o)) for o in objectives][:n]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CodesignError(f"{path} is unreadable ({exc}); rerun codesign search") from None


def _optional_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

