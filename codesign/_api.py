"""The Python API behind ``codesign.search``: one call for the built-in space and a HyperModel."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from codesign.config import SearchConfig
from codesign.errors import CodesignError
from codesign.hyper.settings import HyperSettings
from codesign.preflight import preflight

if TYPE_CHECKING:
    from codesign.compress.settings import CompressSettings


def search(settings: SearchConfig, hypermodel: Any = None,
           training: HyperSettings | None = None, out: TextIO = sys.stdout,
           model: str | Path | None = None, compress: CompressSettings | None = None) -> Any:
    """Run (or resume) a search and write its measured front into ``settings.out``.

    Args:
        settings: The search's settings (data, profile, trials, objectives,
            budgets, run directory...); validated and pre-flighted here.
        hypermodel: None for the built-in space; else the user's search space:
            ``"FILE.py:NAME"``, ``"module:NAME"``, a keras-tuner HyperModel class
            or instance, or a ``build(hp)`` function defined in a file.
        training: How a HyperModel's candidates are trained and pruned (None:
            :class:`HyperSettings` defaults); only with ``hypermodel``.
        out: Where progress and the front's table go.
        model: Your own trained model to compress instead (a ``.keras`` or
            ``.h5`` file or a SavedModel directory); not with ``hypermodel``.
        compress: How ``model`` is compressed and fed (None: defaults).

    Returns:
        The result: ``pareto`` (the ``pareto.json`` document), ``completed``
        and ``failed`` trial counts.

    Raises:
        CodesignError: On a bad setting, bad data, or when too many candidates fail.
    """
    if model is not None:
        if hypermodel is not None or training is not None:
            raise CodesignError("model= compresses your trained model; hypermodel= and "
                                "training= search a HyperModel: pass one of them")
        from codesign.compress.search import run_compress_search
        from codesign.compress.settings import compress_config

        return run_compress_search(compress_config(model, settings, compress, out), out)
    if compress is not None or settings.val_data is not None:
        raise CodesignError("compress= and val_data apply to model= searches (your own trained "
                            "model): pass model= too")
    if hypermodel is None:
        if training is not None:
            raise CodesignError("training settings apply to a hypermodel search: pass "
                                "hypermodel= too, or drop training=")
        from codesign.engine.job import run_search

        return run_search(preflight(settings, builtin=True), out)
    from codesign.hyper.cli import with_latency
    from codesign.hyper.load import as_spec
    from codesign.hyper.search import run_hyper_search
    from codesign.hyper.settings import HyperConfig

    if settings.latency not in (None, "measured", "hybrid") or settings.accuracy != "measured":
        raise CodesignError("a hypermodel search measures every candidate's accuracy and times "
                            "what could enter its front: use accuracy 'measured' and latency "
                            "'measured' or 'hybrid'")
    spec = as_spec(hypermodel)
    cfg = preflight(replace(settings, latency="measured", quality_samples=0))
    return run_hyper_search(HyperConfig(spec, with_latency(cfg, spec, settings.latency, out),
                                        (training or HyperSettings()).validate()), out)
