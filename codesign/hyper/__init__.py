"""Users' own search spaces: keras-tuner HyperModels searched by codesign.

``codesign search --hypermodel FILE.py:NAME`` (or :func:`run_hyper_search`)
turns a HyperModel's ``hp.Int / Float / Choice / Boolean`` calls into Optuna
suggestions of the same trial and adds codesign's per-layer genes (structured
pruning of channel groups, precision per conv / depthwise / dense layer) for
the model it builds. The search process never imports TensorFlow or the
user's file: the model is built in the evaluation child, which asks the
search process for each hyperparameter value (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Any


def run_hyper_search(*args: Any, **kwargs: Any) -> Any:
    """Run a hypermodel search (see :func:`codesign.hyper.search.run_hyper_search`)."""
    from codesign.hyper.search import run_hyper_search as run

    return run(*args, **kwargs)


__all__ = ["run_hyper_search"]
