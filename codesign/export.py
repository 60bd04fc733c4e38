"""Exporting one trial of a run as a deployable ``.tflite`` with its manifest."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from codesign.errors import CodesignError
from codesign.report.manifest import build_manifest
from codesign.search.rundir import RunDir
from codesign.search.study import load_study


def export_trial(run_dir: Path, trial: int, out: Path) -> dict[str, Any]:
    """Write trial ``trial`` of ``run_dir`` to ``out`` and its manifest beside it.

    Args:
        run_dir: The run directory.
        trial: Trial number (see ``pareto.json``).
        out: Destination ``.tflite`` path; the manifest goes to ``out`` with
            suffix ``.json``.

    Returns:
        The manifest.

    Raises:
        CodesignError: If the run, the trial or its model is missing.
    """
    run = RunDir(run_dir)
    if not run.study_db.is_file():
        raise CodesignError(f"{run_dir} is not a codesign run (no study.db)")
    if out.suffix != ".tflite":
        raise CodesignError(f"--out {out} must end in .tflite")
    study = load_study(run.storage_url)
    matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
    if not matches:
        raise CodesignError(f"{run_dir} has no trial {trial}")
    t = matches[0]
    if t.state != TrialState.COMPLETE:
        reason = t.user_attrs.get("fail_reason", t.state.name)
        raise CodesignError(f"trial {trial} did not complete ({reason}); pick another")
    attrs = dict(t.user_attrs)
    src = run.trial_model(trial)
    tuned = run.root / "finetune" / f"trial-{trial}.tflite"
    tuned_record = tuned.with_suffix(".json")
    if tuned.is_file() and tuned_record.is_file():  # a front model: take the fine-tuned one
        final = json.loads(tuned_record.read_text())
        attrs.update({k: final[k] for k in final if k != "times"})
        src = tuned
    if not src.is_file():
        raise CodesignError(
            f"the model of trial {trial} is missing from {run.cache}; rerun the search to "
            "rebuild the cache"
        )
    manifest = build_manifest(
        trial, attrs, study.user_attrs["data_info"], study.user_attrs["profile"]
    )
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, out)
        out.with_suffix(".json").write_text(json.dumps(manifest, indent=1))
    except OSError as exc:
        raise CodesignError(f"cannot write {out}: {exc.strerror}") from None
    return manifest
