"""Convert sampled networks in parallel processes before they are timed.

A latency-model build spends most of its time converting its 400 sampled
networks (about 0.8 s each, one core each). Converting them all first, in
one process per core, and timing them after, roughly halves that on two
cores. The conversions land in the same cache the evaluation child reads
(:func:`codesign.latency.measure.converted`), so anything not converted here
(a failure, an interrupted pool, one core) is converted by the child as
before. This process never imports TensorFlow; its worker processes do.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TextIO

from tqdm import tqdm

MIN_PARALLEL = 8  # fewer fresh networks than this: the child converts them as it goes


def workers() -> int:
    """Conversion processes: one per core this process may use, at most two."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


def convert_missing(samples: list[dict[str, Any]], stream: TextIO,
                    budget_s: float | None = None) -> int:
    """Convert the samples whose ``.tflite`` is not cached yet, in parallel.

    Args:
        samples: Networks from :mod:`codesign.latency.sampling`.
        stream: Where the progress bar goes.
        budget_s: Stop waiting after this many seconds (what is running
            finishes; the rest is left to the child).

    Returns:
        How many were converted here.
    """
    from codesign.latency.measure import converted_path
    from codesign.latency.model import latency_dir

    fresh = [s for s in samples if not converted_path(s).is_file()]
    if workers() < 2 or len(fresh) < MIN_PARALLEL:
        return 0
    start = time.monotonic()
    done = 0
    bar = tqdm(total=len(fresh), desc=f"converting in {workers()} processes", unit="net",
               file=stream)
    try:
        log = str(latency_dir() / "logs" / "convert.log")
        with ProcessPoolExecutor(workers(), mp_context=mp.get_context("spawn"),
                                 initializer=_quiet, initargs=(log,)) as pool:
            futures = [pool.submit(_convert, s) for s in fresh]
            for fut in as_completed(futures):
                done += fut.result() is None
                bar.update(1)
                if budget_s is not None and time.monotonic() - start > budget_s:
                    for other in futures:
                        other.cancel()
                    break
    except BrokenProcessPool:
        pass  # a worker died (memory?): the child converts what is left, one by one
    finally:
        bar.close()
    return done


def _quiet(log_path: str) -> None:
    """Send a worker's output (TensorFlow's logs and warnings) to a log file."""
    from codesign.child.server import redirect_output

    redirect_output(log_path)


def _convert(sample: dict[str, Any]) -> str | None:
    """Convert one sample into the cache (worker process); its error, if any."""
    import codesign  # noqa: F401  (tf_keras before TensorFlow)
    from codesign.latency.measure import converted

    try:
        converted(sample)
    except Exception as exc:  # noqa: BLE001  (the child converts it again and records why)
        return str(exc)[:300]
    return None
