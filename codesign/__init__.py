"""codesign: hardware-aware co-design search for TensorFlow Lite.

Importing the package sets ``TF_USE_LEGACY_KERAS=1`` so that TensorFlow, once
something imports it, uses tf_keras (Keras 2), which TFMOT needs. The package
itself never imports TensorFlow at import time: command-line validation stays
fast and the search process stays light.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from codesign.errors import CodesignError, TrialFailure  # noqa: E402

__version__ = "0.1.0"
__all__ = ["CodesignError", "TrialFailure", "__version__"]
