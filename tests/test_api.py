"""The Python API at the package's top: ``codesign.search`` with a typed settings object."""

from __future__ import annotations

from pathlib import Path

import pytest

import codesign
from codesign.errors import CodesignError
from tests.conftest import python_prints


def test_the_public_names_load_lazily_and_stay_what_they_are() -> None:
    code = (
        "import sys, codesign\n"
        "assert not [m for m in ('optuna', 'tensorflow', 'codesign.engine') if m in sys.modules]\n"
        "from codesign.config import SearchConfig\n"
        "assert codesign.SearchConfig is SearchConfig and callable(codesign.search)\n"
        "import codesign.engine.job  # the engine package must not shadow codesign.search\n"
        "assert callable(codesign.search) and codesign.search.__module__ == 'codesign._api'\n"
        "assert sorted(codesign.__all__) == sorted(n for n in codesign.__all__ if "
        "getattr(codesign, n, None) is not None)\n"
        "print('tensorflow' in sys.modules)\n"
    )
    assert python_prints(code) == "False"


def test_a_hypermodel_search_refuses_estimators(tmp_path: Path) -> None:
    settings = codesign.SearchConfig(out=tmp_path / "run", accuracy="hybrid")
    with pytest.raises(CodesignError, match="measures every candidate"):
        codesign.search(settings, hypermodel="examples/small_cnn.py:SmallCNN")
    settings = codesign.SearchConfig(out=tmp_path / "run", latency="hybrid")
    with pytest.raises(CodesignError, match="hybrid refused: .*SmallCNN has no latency model"):
        codesign.search(settings, hypermodel="examples/small_cnn.py:SmallCNN")
    with pytest.raises(CodesignError, match="training settings apply to a hypermodel"):
        codesign.search(codesign.SearchConfig(out=tmp_path / "run"),
                        training=codesign.HyperSettings())
    assert not (tmp_path / "run").exists()


def test_a_model_search_refuses_estimators_and_a_second_source(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with pytest.raises(CodesignError, match="measures every candidate"):
        codesign.search(codesign.SearchConfig(out=run, accuracy="hybrid"), model="m.keras")
    with pytest.raises(CodesignError, match="pass one of them"):
        codesign.search(codesign.SearchConfig(out=run), model="m.keras",
                        hypermodel="examples/small_cnn.py:SmallCNN")
    with pytest.raises(CodesignError, match="apply to model= searches"):
        codesign.search(codesign.SearchConfig(out=run),
                        compress=codesign.CompressSettings(max_accuracy_drop=0.01))
    with pytest.raises(CodesignError, match="no such file"):
        codesign.search(codesign.SearchConfig(out=run), model=tmp_path / "missing.keras")
    assert not run.exists()
