"""The evaluation child process.

All TensorFlow work (supernet training, sub-model building, conversion) and all
interpreter work happen in one persistent child process, so that a crash there
(even a segfault) kills only that process: the search restarts it and fails
only the trial that crashed it.
"""

from codesign.child.client import EvalChild

__all__ = ["EvalChild"]
