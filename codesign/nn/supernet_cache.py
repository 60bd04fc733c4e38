"""Trained supernets kept on this machine for the next run that would train the same one.

A supernet depends on the space, the data (its contents, not its path), the
seed, the training settings and the code that trains it; not on the profile, the objectives, the
budgets or the sampler. A second search that differs only in those (another
profile, another budget) takes the first one's supernet from
``$CODESIGN_HOME/supernets`` instead of training it again. The run directory
still gets its own copy, so a run stays complete on its own.
``CODESIGN_SUPERNET_CACHE=0`` turns the cache off. Nothing here imports
TensorFlow; weights stay npz files without pickles.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

from codesign.data import data_fingerprint
from codesign.latency.model import codesign_home

ENV = "CODESIGN_SUPERNET_CACHE"


def enabled() -> bool:
    """Whether runs share supernets through the cache (``CODESIGN_SUPERNET_CACHE``)."""
    return os.environ.get(ENV, "1") not in ("0", "false", "no", "off")


def cache_dir() -> Path:
    """The folder of cached supernets."""
    return codesign_home() / "supernets"


def key(fingerprint: dict[str, Any], data: str, seed: int) -> str:
    """The cache key of a supernet.

    Args:
        fingerprint: What the run's ``supernet.json`` records (space, data
            name, classes, channels, training settings).
        data: The ``--data`` value, whose contents (not path) are hashed.
        seed: The run's seed (it also draws the validation split).
    """
    path = Path(data)
    if path.is_file():  # the same bytes under another name or folder: the same data
        content = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        content = data_fingerprint(data).split(" sha256:")[-1]
    text = json.dumps({**fingerprint, "data": content, "seed": seed, "code": _code_digest()},
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def fetch(name: str, weights: Path, meta: Path) -> bool:
    """Copy a cached supernet into a run directory; False when there is none."""
    src = cache_dir() / name
    if not enabled() or not (src / weights.name).is_file() or not (src / meta.name).is_file():
        return False
    try:
        for file, dest in ((src / weights.name, weights), (src / meta.name, meta)):
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(file, tmp)
            tmp.replace(dest)
    except OSError:
        return False  # an unreadable cache costs a training, not the run
    return True


def store(name: str, weights: Path, meta: Path) -> None:
    """Keep a freshly trained supernet for later runs (a full disk only skips this)."""
    if not enabled():
        return
    dest = cache_dir() / name
    tmp = dest.with_name(f"{name}.tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(weights, tmp / weights.name)
        shutil.copyfile(meta, tmp / meta.name)
        if dest.exists():
            shutil.rmtree(tmp)  # another run stored the same one meanwhile
            return
        tmp.replace(dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _code_digest() -> str:
    """A digest of the modules that define and train the supernet (a change retrains)."""
    here = Path(__file__).parent
    h = hashlib.sha256()
    for name in ("layers.py", "supernet.py", "train.py", "bn.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]
