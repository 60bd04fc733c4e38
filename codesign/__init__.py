"""codesign: hardware-aware co-design search for TensorFlow Lite.

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` so that TensorFlow, once
something imports it, uses tf_keras (Keras 2), which TFMOT needs. The package
itself never imports TensorFlow at import time: command-line validation stays
fast and the search process stays light.

The Python API (``__all__``): ``codesign.search(settings, hypermodel=None,
training=None, model=None, compress=None)`` with a :class:`SearchConfig` for
the built-in space, a HyperModel (:class:`HyperSettings` says how its
candidates are trained) and a trained model to compress alike
(:class:`CompressSettings` says how it is pruned and fed).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any  # noqa: E402

from codesign.errors import CodesignError, TrialFailure  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CodesignError", "CompressSettings", "HyperSettings", "SearchConfig", "TrialFailure",
           "__version__", "search"]

# Public names and the private modules that hold them, imported on first use (Optuna's
# way), so `import codesign` stays light and never imports TensorFlow.
_LAZY = {
    "search": "codesign._api",
    "SearchConfig": "codesign.config",
    "HyperSettings": "codesign.hyper.settings",
    "CompressSettings": "codesign.compress.settings",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'codesign' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
