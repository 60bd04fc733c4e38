"""Exporting one trial of a run as a deployable ``.tflite`` with its manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from codesign.errors import CodesignError
from codesign.report.manifest import build_manifest
from codesign.report.pareto import READABLE_TEXT, read_pareto
from codesign.run.directory import RunDir
from codesign.run.measurement import fail_reason
from codesign.run.study import load_study
from codesign.tflite.interface import IO_TYPES


def pick_trial(
    run_dir: Path, max_latency_ms: float | None = None, min_accuracy: float | None = None,
    max_ram_kb: float | None = None, max_flash_kb: float | None = None,
) -> int:
    """The front point that fits the budgets given.

    ``max_ram_kb`` (the tensor arena) and ``max_flash_kb`` (the file) narrow the
    front first. Then, with ``min_accuracy``: the fastest point at or above it
    (validation accuracy of the fine-tuned model, what the front is ranked by);
    otherwise the most accurate point at or under ``max_latency_ms`` (if given).

    Raises:
        CodesignError: If the run has no front, or no point fits.
    """
    points = _front_points(run_dir)
    if max_latency_ms is None and min_accuracy is None and max_ram_kb is None \
            and max_flash_kb is None:
        raise CodesignError("give --trial, --reference, --max-latency-ms, --min-accuracy, "
                            "--max-ram-kb or --max-flash-kb")
    for limit, key, what in ((max_ram_kb, "ram_bytes", "RAM (tensor arena)"),
                             (max_flash_kb, "flash_bytes", "flash")):
        if limit is None:
            continue
        known = [p for p in points if p.get(key) is not None]
        if not known:
            raise CodesignError(f"{run_dir}'s pareto.json records no {what} (a run of codesign "
                                "before it); rerun the search with this codesign")
        fits = [p for p in known if p[key] <= limit * 1024]
        if not fits:
            least = min(p[key] for p in known) / 1024
            raise CodesignError(f"no front point needs {limit:g} KB of {what} or less "
                                f"(least: {least:.1f} KB)")
        points = fits
    if min_accuracy is not None:
        fits = [p for p in points if p["val_accuracy"] >= min_accuracy]
        if not fits:
            best = max((p["val_accuracy"] for p in points), default=float("nan"))
            raise CodesignError(
                f"no front point reaches accuracy {min_accuracy} (best: {best:.4f})"
            )
        return min(fits, key=lambda p: (p["latency_ms"]["median"], -p["val_accuracy"]))["trial"]
    if max_latency_ms is not None:
        fits = [p for p in points if p["latency_ms"]["median"] <= max_latency_ms]
        if not fits:
            fastest = min((p["latency_ms"]["median"] for p in points), default=float("nan"))
            raise CodesignError(
                f"no front point runs in {max_latency_ms} ms or less (fastest: {fastest:.4f} ms)"
            )
        points = fits
    return max(points, key=lambda p: (p["val_accuracy"], -p["latency_ms"]["median"]))["trial"]


def _front_points(run_dir: Path) -> list[dict[str, Any]]:
    """The points of a run's ``pareto.json`` (see :func:`_pareto`)."""
    return list(_pareto(run_dir)["points"])


def _pareto(run_dir: Path) -> dict[str, Any]:
    """A run's ``pareto.json`` of a readable schema.

    Raises:
        CodesignError: If there is none, or its schema version is not read here.
    """
    path = run_dir / "pareto.json"
    if not path.is_file():
        raise CodesignError(f"{run_dir} has no pareto.json; run or finish the search first")
    doc = json.loads(path.read_text())
    try:
        return read_pareto(doc)
    except ValueError:
        raise CodesignError(
            f"{path} has schema version {doc.get('schema_version')!r}; this codesign reads "
            f"{READABLE_TEXT}"
        ) from None


def export_trial(
    run_dir: Path, trial: int, out: Path, io_type: str = "float32"
) -> dict[str, Any]:
    """Write trial ``trial`` of ``run_dir`` to ``out`` and its manifest beside it.

    Args:
        run_dir: The run directory.
        trial: Trial number (see ``pareto.json``).
        out: Destination ``.tflite`` path; the manifest goes to ``out`` with
            suffix ``.json``.
        io_type: ``float32`` (as searched), ``int8`` or ``uint8`` inputs and
            outputs (the model's first and last layers must be int8).

    Returns:
        The manifest.

    Raises:
        CodesignError: If the run, the trial or its model is missing.
    """
    run = _run(run_dir, out)
    study = load_study(run.storage_url)
    matches = [t for t in study.get_trials(deepcopy=False) if t.number == trial]
    if not matches:
        raise CodesignError(f"{run_dir} has no trial {trial}")
    t = matches[0]
    if t.state != TrialState.COMPLETE:
        reason = fail_reason(t.user_attrs) or t.state.name
        raise CodesignError(f"trial {trial} did not complete ({reason}); pick another")
    attrs = dict(t.user_attrs)
    src = run.trial_model(trial)
    tuned = run.root / "finetune" / f"trial-{trial}.tflite"
    tuned_record = tuned.with_suffix(".json")
    if tuned.is_file() and tuned_record.is_file():  # a front model: take the fine-tuned one
        final = json.loads(tuned_record.read_text())
        if final.get("finetune", {}).get("kept", True):  # unless it lost to the search's
            attrs.update({k: final[k] for k in final if k != "times"})
            src = tuned
        else:
            attrs["finetune"] = final.get("finetune")
    if not src.is_file():
        raise CodesignError(
            f"the model of trial {trial} is missing from {run.cache}; rerun the search to "
            "rebuild the cache"
        )
    manifest = build_manifest(
        trial, attrs, study.user_attrs["data_info"], study.user_attrs["profile"]
    )
    return _write(src, manifest, out, io_type)


def export_reference(run_dir: Path, name: str, out: Path, io_type: str = "float32"
                     ) -> dict[str, Any]:
    """Write reference ``name`` of ``run_dir`` (``max-int8``, ``original-float32``...) to ``out``.

    A reference no trial dominates is marked ``offered`` in ``pareto.json``;
    any measured reference can be written. Its manifest is a trial's, with
    ``trial`` null and ``reference`` its name.

    Raises:
        CodesignError: If the run, the reference or its model is missing.
    """
    run = _run(run_dir, out)
    refs = {str(r.get("name")): r for r in _pareto(run_dir).get("references", [])}
    if name not in refs:
        known = ", ".join(refs) or "none (the run measured no references)"
        raise CodesignError(f"{run_dir} has no reference {name!r}; its references: {known}")
    src = run.root / refs[name]["model"]
    if not src.is_file():
        raise CodesignError(f"the model of reference {name} is missing ({src}); rerun the "
                            "search to measure it again")
    from codesign.hardware.litert import io_details

    study = load_study(run.storage_url)
    attrs = {**refs[name], "io": io_details(src.read_bytes())}
    manifest = build_manifest(None, attrs, study.user_attrs["data_info"],
                              study.user_attrs["profile"])
    return _write(src, {**manifest, "reference": name}, out, io_type)


def _run(run_dir: Path, out: Path) -> RunDir:
    """The run to export from, once it and the destination are checked."""
    run = RunDir(run_dir)
    if not run.study_db.is_file():
        raise CodesignError(f"{run_dir} is not a codesign run (no study.db)")
    if out.suffix != ".tflite":
        raise CodesignError(f"--out {out} must end in .tflite")
    return run


def _write(src: Path, manifest: dict[str, Any], out: Path, io_type: str) -> dict[str, Any]:
    """Write the model at ``src`` (with ``io_type`` inputs and outputs) and its manifest."""
    blob = src.read_bytes()
    if io_type != "float32":
        blob = _with_io_type(src, io_type)
        from codesign.hardware.litert import io_details

        io = io_details(blob)
        for side in ("input", "output"):
            manifest[side]["dtype"] = io[side]["dtype"]
            manifest[side]["quantization"] = io[side]["quantization"]
        manifest["io_type"] = io_type
        manifest["size_bytes"] = len(blob)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(blob)
        out.with_suffix(".json").write_text(json.dumps(manifest, indent=1))
    except OSError as exc:
        raise CodesignError(f"cannot write {out}: {exc.strerror}") from None
    return manifest


def _with_io_type(src: Path, io_type: str) -> bytes:
    """The model at ``src`` with ``io_type`` inputs and outputs, made in the child process.

    TensorFlow's tool does the work; in the child its logging stays out of the
    user's terminal and a crash in it cannot take the command down.
    """
    import tempfile

    from codesign.child import EvalChild
    from codesign.errors import TrialFailure

    if io_type not in IO_TYPES:
        raise CodesignError(f"--io-type {io_type!r}: use one of {', '.join(IO_TYPES)}")
    with tempfile.TemporaryDirectory() as tmp, EvalChild(timeout_s=300) as worker:
        dst = Path(tmp) / "io.tflite"
        try:
            worker.call("change_io", src=str(src), dst=str(dst), io_type=io_type)
        except TrialFailure as exc:
            raise CodesignError(f"cannot change the model's input and output type: {exc}") from None
        return dst.read_bytes()
