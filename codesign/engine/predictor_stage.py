"""The search's accuracy-predictor stage: train once per run (resumable), report fidelity."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TextIO

from tqdm import tqdm

from codesign.child import EvalChild
from codesign.config import SearchConfig
from codesign.engine import estimates
from codesign.errors import TrialFailure
from codesign.predict.predictor import AccuracyPredictor, PredictorSettings, train_predictor
from codesign.run.directory import RunDir
from codesign.space.candidate import Candidate

CHUNK = 20  # candidates per call to the child (each chunk is saved at once)
MIN_FLOAT, MIN_QUANT = 100, 20  # the fewest samples a time budget shrinks the predictor to
MIN_SCREEN = 50  # fewer screened samples than this are none (then APQ's transfer is used)


def predictor_stage(worker: EvalChild, cfg: SearchConfig, run: RunDir, out: TextIO,
                    left_s: float | None = None) -> AccuracyPredictor | None:
    """Load the run's accuracy predictor, or train it; print its fidelity.

    Args:
        worker: The evaluation child.
        cfg: The search's settings.
        run: The run directory.
        out: Where progress goes.
        left_s: Seconds left of the search's time budget (None: no budget). The
            sample counts shrink so that this stage takes at most a third of it.

    Returns:
        The predictor, or None when the search measures accuracy only.
    """
    if cfg.accuracy == "measured":
        return None
    space = cfg.space_spec
    n_float, n_quant, n_screen = _sample_counts(cfg, left_s)
    settings = PredictorSettings(n_float, n_quant, cfg.seed, n_screen)
    path = run.root / "predictor.json"
    if path.is_file():
        saved = AccuracyPredictor.load(path, space)
        if saved.meta.get("settings") == asdict(settings):
            print_fidelity(saved.meta, out)
            return saved
    cache_file = run.root / "predictor_data.jsonl"
    cache = _read_cache(cache_file)
    scaled = "" if (n_float, n_quant, n_screen) == (
        cfg.predictor_float_samples, cfg.predictor_quant_samples,
        cfg.predictor_screen_samples) else (
        ", fewer than asked to fit a third of the time budget left")
    expected = estimates.predictor_s(n_float, n_quant, n_screen)
    print(f"accuracy predictor: {n_float} float, {n_screen} screened and {n_quant} converted "
          f"quantized samples{scaled}, expected about {estimates.duration(expected)}",
          file=out, flush=True)
    # held-out ones are evaluated twice; the converted ones are screened too
    total = 1.2 * (n_float + n_quant) + (n_screen + n_quant if n_screen else 0)
    bar = tqdm(total=int(total), desc="accuracy predictor", unit="net", file=out)

    def evaluate(cands: list[Candidate], kind: str, seed: int) -> list[dict[str, Any] | None]:
        keys = [_key(c, kind, seed) for c in cands]
        todo = [c for c, k in zip(cands, keys, strict=True) if k not in cache]
        bar.update(len(cands) - len(todo))
        for start in range(0, len(todo), CHUNK):
            chunk = todo[start : start + CHUNK]
            res = _accuracy_samples(worker, chunk, kind, seed)
            with cache_file.open("a") as fh:
                for c, r in zip(chunk, res, strict=True):
                    k = _key(c, kind, seed)
                    cache[k] = r if r.get("val_accuracy") is not None else None
                    fh.write(json.dumps({"key": k, **(cache[k] or {"val_accuracy": None})})
                             + "\n")
            bar.update(len(chunk))
        return [cache.get(k) for k in keys]

    try:
        predictor = train_predictor(space, settings, cfg.layer_choices(), evaluate)
    finally:
        bar.close()
    predictor.save(path)
    (run.root / "predictor_fidelity.json").write_text(json.dumps(predictor.meta, indent=1))
    print_fidelity(predictor.meta, out)
    return predictor


def screen_accuracy(worker: EvalChild) -> Callable[[list[Candidate]], list[float | None]]:
    """Validation accuracy of candidates through the screen (None where one failed)."""

    def screened(cands: list[Candidate]) -> list[float | None]:
        return [r.get("val_accuracy") for start in range(0, len(cands), CHUNK)
                for r in _accuracy_samples(worker, cands[start : start + CHUNK], "rounded", 0)]

    return screened


def _accuracy_samples(worker: EvalChild, cands: list[Candidate], kind: str, seed: int
                      ) -> list[dict[str, Any]]:
    """One child call: each candidate's result (``{"error": ...}`` where it failed)."""
    try:
        return worker.call("accuracy_samples", candidates=[c.to_dict() for c in cands],
                           quantized=kind == "quantized", rounded=kind == "rounded",
                           calib_seed=seed, timeout_s=None)
    except TrialFailure as exc:
        return [{"error": str(exc)[:300]} for _ in cands]


def _sample_counts(cfg: SearchConfig, left_s: float | None) -> tuple[int, int, int]:
    """Float, converted and screened sample counts: as asked, or scaled to fit the budget."""
    n_float, n_quant = cfg.predictor_float_samples, cfg.predictor_quant_samples
    n_screen = cfg.predictor_screen_samples
    if left_s is None:
        return n_float, n_quant, n_screen
    share = max(0.0, left_s / 3) / estimates.predictor_s(n_float, n_quant, n_screen)
    if share >= 1.0:
        return n_float, n_quant, n_screen
    screened = min(n_screen, int(n_screen * share))
    return (max(MIN_FLOAT, min(n_float, int(n_float * share))),
            max(MIN_QUANT, min(n_quant, int(n_quant * share))),
            screened if screened >= MIN_SCREEN else 0)


def print_fidelity(meta: dict[str, Any], out: TextIO) -> None:
    """Print the kept predictor's held-out fidelity beside both baselines."""
    chosen = meta["chosen"]
    other = next(n for n in meta["fidelity"] if n != chosen)
    lines = [f"accuracy predictor: {chosen} kept over {other} (held-out quantized Kendall tau "
             f"{meta['fidelity'][chosen]['quantized']['predictor']['kendall_tau']:.2f} vs "
             f"{meta['fidelity'][other]['quantized']['predictor']['kendall_tau']:.2f}); "
             f"target {'met' if meta['meets_target'] else 'NOT met'}"]
    for part in ("float", "quantized"):
        f = meta["fidelity"][chosen][part]
        again_n = f["second_evaluation"].get("n", f["n"])
        lines.append(
            f"  {part:<9} n={f['n']:<4} predictor tau {f['predictor']['kendall_tau']:.2f} "
            f"RMSE {f['predictor']['rmse']:.4f} | predicting the mean RMSE "
            f"{f['mean']['rmse']:.4f} | evaluated again (n={again_n}) tau "
            f"{f['second_evaluation']['kendall_tau']:.2f} RMSE "
            f"{f['second_evaluation']['rmse']:.4f}")
        halves = f.get("validation_halves")
        if halves:
            lines.append(
                f"  {'':<9} validation set: its halves agree to tau "
                f"{halves['kendall_tau']:.2f}, so a perfect predictor reaches about tau "
                f"{halves['ceiling_kendall_tau']:.2f} RMSE {halves['ceiling_rmse']:.4f}")
    screen = meta.get("screen", {})
    if screen.get("n"):
        agree = screen["against_converted"]
        lines.append(
            f"  {screen['n']} screened quantized samples track the converted ones at Kendall "
            f"tau {agree['kendall_tau']:.2f} RMSE {agree['rmse']:.4f} (n={agree['n']}; weights "
            "rounded per layer in the masked supernet, no conversion)")
    print("\n".join(lines), file=out)


def _key(cand: Candidate, kind: str, seed: int) -> str:
    """Cache key; float and converted samples keep the key of before screening existed."""
    what: bool | str = kind if kind == "rounded" else kind == "quantized"
    return json.dumps([cand.to_dict(), what, seed], sort_keys=True)


def _read_cache(path: Any) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                key = rec.pop("key")
                out[key] = rec if rec["val_accuracy"] is not None else None
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
                continue
    return out
