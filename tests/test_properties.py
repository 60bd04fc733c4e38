"""Property-based tests: bad input gives a result or a CodesignError, never another exception.

Hypothesis generates profiles (valid ones mutated field by field, and arbitrary
text), data files (arrays of any shape, type and content, and arbitrary bytes)
and candidates (dicts and trial parameters of any shape). Each loader must
either accept the input or refuse it with a ``CodesignError``.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from codesign.data import load_dataset
from codesign.errors import CodesignError
from codesign.hardware.profile import PROFILE_DIR, Profile, load_profile
from codesign.space import get_space
from codesign.space.candidate import Candidate
from codesign.space.suggest import candidate_from_params, params_of

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
_counter = itertools.count()

# --- a small TOML writer (the standard library only reads TOML) ----------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=8)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a JSON string is a valid TOML basic string
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    return '""'  # None has no TOML form: an empty string stands in


def to_toml(doc: dict[str, Any]) -> str:
    """TOML text of a document of plain values (inline tables for nested ones)."""
    return "\n".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items()) + "\n"


def _shipped() -> dict[str, Any]:
    return tomllib.loads((PROFILE_DIR / "xnnpack-1t.toml").read_text())


def _paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in doc.items():
        out.append((*prefix, k))
        if isinstance(v, dict):
            out += _paths(v, (*prefix, k))
    return out


@st.composite
def mutated_profiles(draw: st.DrawFn) -> dict[str, Any]:
    """The shipped profile with one to three fields replaced, deleted or added."""
    doc = _shipped()
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(("replace", "delete", "add")))
        if action == "replace":
            parent[path[-1]] = draw(values)
        elif action == "delete":
            del parent[path[-1]]
        else:
            parent[draw(st.text(min_size=1, max_size=10))] = draw(values)
    return doc


def _write(tmp: Path, suffix: str, data: bytes | str) -> Path:
    path = tmp / f"case{next(_counter)}{suffix}"
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


@SETTINGS
@given(doc=mutated_profiles())
def test_profile_loader_accepts_or_refuses_mutated_profiles(tmp_path: Path, doc: dict) -> None:
    path = _write(tmp_path, ".toml", to_toml(doc))
    try:
        assert isinstance(load_profile(path), Profile)
        event("accepted")
    except CodesignError as exc:
        assert str(exc) and "\n" not in str(exc)
        event("refused")


@SETTINGS
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(
    lambda b: b.decode("latin-1"))))
def test_profile_loader_refuses_arbitrary_text(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, ".toml", text)
    with pytest.raises(CodesignError):
        load_profile(path)  # no text without the required fields is a profile


def test_the_toml_writer_round_trips_the_shipped_profile(tmp_path: Path) -> None:
    """The writer above is what the mutation test relies on."""
    path = _write(tmp_path, ".toml", to_toml(_shipped()))
    assert load_profile(path).name == "xnnpack-1t"


# --- data files ---------------------------------------------------------------------------

dtypes = st.sampled_from([np.uint8, np.int16, np.int64, np.float32, np.float64, np.bool_])
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=6)


@st.composite
def npz_arrays(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Four arrays of any shape and type, sometimes well formed, and extra or missing keys."""
    good = draw(st.booleans())
    n_train = draw(st.integers(6, 16) if good else st.integers(0, 12))
    n_test, side = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        if good:
            x = draw(hnp.arrays(draw(dtypes), (n, side, side)))
            labels = st.integers(0, 2) if draw(st.integers(0, 4)) else st.integers(-1, 4)
            y = draw(hnp.arrays(np.int64, (n,), elements=labels))
        else:
            x = draw(hnp.arrays(draw(dtypes), draw(shapes)))
            y = draw(hnp.arrays(draw(dtypes), draw(shapes)))
        out[f"x_{split}"], out[f"y_{split}"] = x, y
    if not good:
        for key in draw(st.lists(st.sampled_from(sorted(out)), max_size=2, unique=True)):
            del out[key]
    if draw(st.integers(0, 3)) == 0:
        out["labels"] = np.array(draw(st.lists(st.text(max_size=5), max_size=6)), dtype=str)
    return out


@SETTINGS
@given(arrays=npz_arrays(), seed=st.integers(0, 3))
def test_npz_loader_accepts_or_refuses_any_arrays(tmp_path: Path, arrays: dict, seed: int
                                                  ) -> None:
    path = tmp_path / f"case{next(_counter)}.npz"
    np.savez(path, **arrays)
    try:
        data = load_dataset(str(path), seed)
    except CodesignError as exc:
        assert str(exc)
        event("refused")
        return
    event("accepted")
    assert data.x_train.dtype == np.float32 and data.x_train.ndim == 4
    for x in (data.x_train, data.x_val):  # scaled by the training images' range
        assert np.isfinite(x).all() and x.min(initial=0) >= -1e-6 and x.max(initial=0) <= 1 + 1e-6
    assert np.isfinite(data.x_test).all()
    assert len(data.x_train) + len(data.x_val) == len(arrays["x_train"])
    assert data.y_val.max(initial=0) < data.num_classes


@SETTINGS
@given(blob=st.binary(max_size=300))
def test_npz_loader_refuses_arbitrary_bytes(tmp_path: Path, blob: bytes) -> None:
    path = _write(tmp_path, ".npz", blob)
    with pytest.raises(CodesignError):
        load_dataset(str(path), 0)


def test_npz_loader_never_unpickles(tmp_path: Path) -> None:
    """An object array needs pickle to load: it is refused, and nothing runs."""
    path = tmp_path / "objects.npz"
    x = np.empty(4, dtype=object)
    np.savez(path, x_train=x, y_train=np.arange(4), x_test=x, y_test=np.arange(4))
    with pytest.raises(CodesignError, match="cannot read it as an npz"):
        load_dataset(str(path), 0)


# --- candidates ---------------------------------------------------------------------------

SPACE = get_space("tiny")
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 64), st.floats(-1, 2), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=12)


@st.composite
def candidate_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """A valid candidate's dict with some fields replaced by arbitrary JSON values."""
    base = SPACE.random_candidate(np.random.default_rng(draw(st.integers(0, 1000)))).to_dict()
    for key in draw(st.lists(st.sampled_from(sorted(base)), max_size=4, unique=True)):
        if draw(st.booleans()):
            base[key] = draw(json_values)
        else:
            del base[key]
    return base


@SETTINGS
@given(d=st.one_of(candidate_dicts(), st.dictionaries(st.text(max_size=10), json_values)))
def test_candidate_decoder_accepts_or_refuses_any_dict(d: dict) -> None:
    try:
        cand = Candidate.from_dict(d)
    except CodesignError:
        event("refused")
        return
    event("accepted")
    assert Candidate.from_dict(cand.to_dict()) == cand


@st.composite
def trial_params(draw: st.DrawFn) -> dict[str, Any]:
    """A candidate's trial parameters with some values replaced or removed."""
    params = params_of(SPACE.random_candidate(np.random.default_rng(draw(st.integers(0, 999)))))
    for key in draw(st.lists(st.sampled_from(sorted(params)), max_size=3, unique=True)):
        if draw(st.booleans()):
            params[key] = draw(json_values)
        else:
            del params[key]
    return params


@SETTINGS
@given(params=trial_params())
def test_parameter_decoder_accepts_only_candidates_of_the_space(params: dict) -> None:
    try:
        cand = candidate_from_params(params, SPACE)
    except CodesignError:
        event("refused")
        return
    event("accepted")
    SPACE.check(cand)
    assert candidate_from_params(params_of(cand), SPACE) == cand


# --- nothing loaded from a file runs code -------------------------------------------------

def test_no_module_can_unpickle() -> None:
    """Run directories, latency models, predictors and profiles are JSON, TOML or npz.

    No module imports a pickle-based loader, every ``np.load`` refuses pickles,
    and no Keras model is ever loaded from a file (weights travel as npz).
    """
    import ast

    root = Path(__file__).resolve().parents[1] / "codesign"
    banned = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}
    # The one exception: a HyperModel *instance* handed to the Python API is pickled in
    # memory for the run's own evaluation child (as the pipe pickles every message anyway);
    # it is never written to the run directory, which keeps only a digest of it.
    allowed = {root / "hyper" / "load.py"}
    for file in sorted(set(root.rglob("*.py")) - allowed):
        tree = ast.parse(file.read_text(), str(file))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned, file
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in banned, file
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                name = node.func.attr
                if name == "load" and getattr(node.func.value, "id", "") == "np":
                    kws = {k.arg: k.value for k in node.keywords}
                    assert isinstance(kws.get("allow_pickle"), ast.Constant) and kws[
                        "allow_pickle"].value is False, f"{file}:{node.lineno}"
                assert name not in {"load_model", "model_from_json"} or getattr(
                    node.func.value, "id", "") not in {"keras", "models"}, f"{file}:{node.lineno}"


def test_a_supernet_file_with_objects_is_refused_not_unpickled(tmp_path: Path) -> None:
    from codesign.nn.supernet import Supernet

    net = Supernet(SPACE, 10, 1)
    evil = tmp_path / "supernet.npz"
    arrays = {f"{name}/{i}": w for name, ws in net.weights().items() for i, w in enumerate(ws)}
    arrays["stem_conv/0"] = np.empty(3, dtype=object)
    np.savez(evil, **arrays)
    with pytest.raises(CodesignError, match="delete the file"):
        net.load(evil)
