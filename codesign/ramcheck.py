"""``codesign profile check`` of a TFLM profile: both RAM estimates against TFLM itself.

Random candidates of a built-in space (RGB input, the profile's precisions
per layer, structured and mixed) are converted once (cached with the latency
models' conversions) and run in TensorFlow Lite Micro in the evaluation child,
one request per model so that a crash in TFLM costs one model. Each gets
TFLM's recorded head (planned activations), tail and total, and the smallest
arena it runs in; beside them the arena estimated before conversion
(:mod:`codesign.space.ram`) and from the file (:mod:`codesign.tflite.memplan`).
Records are kept per model in ``$CODESIGN_HOME/latency/ram-check.jsonl``, so a
rerun measures only what is new.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TextIO

import numpy as np

from codesign.errors import CodesignError, TrialFailure
from codesign.hardware.profile import Profile
from codesign.latency.measure import read_records
from codesign.latency.model import latency_dir
from codesign.latency.sampling import space_from_dict, whole_networks
from codesign.space.candidate import Candidate
from codesign.space.ram import estimate_ram

CHECK_SEED = 19
TARGET = 0.95  # share of models whose head estimate is within TOLERANCE of TFLM's
TOLERANCE = 0.05
CHANNELS = 3


@dataclass(frozen=True)
class Agreement:
    """How one estimate of the head agrees with TFLM's recorded head.

    Attributes:
        n: Models compared.
        within: Share within :data:`TOLERANCE`.
        median_error: Median absolute relative error.
        max_error: Largest absolute relative error.
        mean_error: Mean signed relative error (positive: the estimate is larger).
    """

    n: int
    within: float
    median_error: float
    max_error: float
    mean_error: float

    @classmethod
    def of(cls, estimated: list[float], measured: list[float]) -> Agreement:
        """Agreement of two equally long lists of byte counts."""
        rel = np.array(estimated, dtype=float) / np.array(measured, dtype=float) - 1.0
        a = np.abs(rel)
        return cls(len(a), float(np.mean(a <= TOLERANCE + 1e-12)), float(np.median(a)),
                   float(a.max()), float(rel.mean()))

    def describe(self) -> str:
        """One phrase: within the tolerance, median and largest error."""
        return (f"{self.within:.0%} within {TOLERANCE:.0%} (median |error| "
                f"{self.median_error:.1%}, largest {self.max_error:.1%}, mean "
                f"{self.mean_error:+.1%})")


class RamCheckHandlers:
    """The child's side: convert one sampled network and measure it in TFLM.

    Args:
        progress: Sends a progress record to the search process (unused).
    """

    def __init__(self, progress: Callable[[dict[str, Any]], None]) -> None:
        self.progress = progress

    def do_ram_measure(self, sample: dict[str, Any]) -> dict[str, Any]:
        """TFLM's arena figures and the file's estimate for one sampled network."""
        from codesign.hardware import tflm
        from codesign.latency.measure import converted
        from codesign.tflite import memplan

        blob = converted(sample).read_bytes()
        plan = memplan.plan(blob)
        facts = tflm.arena(blob)
        return {**facts.to_dict(), "needed_bytes": tflm.needed_arena(blob, facts),
                "file_head": plan.head_bytes, "file_tail": plan.tail_bytes,
                "flash_bytes": len(blob)}


def check_ram(profile: Profile, n: int, space: str = "default", out: TextIO = sys.stdout
              ) -> dict[str, Any]:
    """Measure ``n`` random candidates in TFLM and compare both estimates with it.

    Returns:
        The figures (also written to ``ram-check.json`` beside the records).

    Raises:
        CodesignError: If fewer than two models ran in TFLM.
    """
    from codesign.child import EvalChild

    samples = whole_networks(n, CHECK_SEED, profile.precisions, space, CHANNELS)
    path = latency_dir() / "ram-check.jsonl"
    known = read_records(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with EvalChild(timeout_s=900) as child, path.open("a") as fh:
        for k, sample in enumerate(samples):
            if sample["id"] not in known:
                known[sample["id"]] = {"id": sample["id"], **_measure(child, sample)}
                fh.write(json.dumps(known[sample["id"]]) + "\n")
                fh.flush()
            print(f"\rTFLM arena of {k + 1}/{len(samples)} candidates", end="", file=out,
                  flush=True)
    print(file=out)
    records = [{**known[s["id"]], **_pre_conversion(s)} for s in samples]
    ok = [r for r in records if "error" not in r]
    if len(ok) < 2:
        raise CodesignError(f"fewer than 2 of {n} candidates ran in TFLM: "
                            f"{records[0].get('error', '')}")
    head = [r["head_bytes"] for r in ok]
    figures = {
        "profile": profile.name, "n": len(records), "measured": len(ok), "space": space,
        "precisions": list(profile.precisions), "seed": CHECK_SEED,
        "pre_conversion": asdict(Agreement.of([r["pre_head"] for r in ok], head)),
        "file": asdict(Agreement.of([r["file_head"] for r in ok], head)),
        "pre_conversion_total": asdict(Agreement.of([r["pre_head"] + r["pre_tail"] for r in ok],
                                                    [r["total_bytes"] for r in ok])),
        "needed_above_total": sum(r["needed_bytes"] > r["total_bytes"] for r in ok),
        "needed_over_total_max": max(r["needed_bytes"] - r["total_bytes"] for r in ok),
        "head_range": [min(head), max(head)],
        "failed": [r["error"] for r in records if "error" in r][:5],
    }
    (latency_dir() / "ram-check.json").write_text(json.dumps(figures, indent=1))
    return figures


def report_lines(f: dict[str, Any]) -> list[str]:
    """The check's figures as the lines ``codesign profile check`` prints."""
    pre, file = Agreement(**f["pre_conversion"]), Agreement(**f["file"])
    total = Agreement(**f["pre_conversion_total"])
    verdict = "meets" if min(pre.within, file.within) >= TARGET else "misses"
    lines = [
        f"{f['profile']}: RAM estimates against TFLM's recorded head (planned activations) on "
        f"{f['measured']} of {f['n']} random {f['space']}-space candidates (RGB, "
        f"{'/'.join(f['precisions'])} per layer; head {f['head_range'][0]}-"
        f"{f['head_range'][1]} bytes):",
        f"  before conversion (layer shapes and precisions): {pre.describe()}",
        f"  from the .tflite file:                           {file.describe()}",
        f"  whole arena before conversion (head + rough tail) against TFLM's total: "
        f"{total.describe()}",
        f"  TFLM needed more than its recorded total in {f['needed_above_total']} models "
        f"(at most {f['needed_over_total_max']} bytes more: preparing borrows arena memory)",
        f"{verdict} the target of {TARGET:.0%} within {TOLERANCE:.0%} for both estimates",
    ]
    lines += [f"  failed in TFLM: {why}" for why in f["failed"]]
    return lines


def _measure(child: Any, sample: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(child.call("ram_measure", sample=sample))
    except TrialFailure as exc:  # EvaluatorCrashed too: TFLM took the child down
        return {"error": str(exc)[:300]}


def _pre_conversion(sample: dict[str, Any]) -> dict[str, int]:
    est = estimate_ram(space_from_dict(sample["space"]), Candidate.from_dict(sample["candidate"]),
                       sample["num_classes"], sample["channels"])
    return {"pre_head": est.head_bytes, "pre_tail": est.tail_bytes}

