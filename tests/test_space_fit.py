"""Presets fitted to the data: resolutions from the images' size, strides for a small last map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codesign.data import load_dataset
from codesign.errors import CodesignError
from codesign.preflight import data_fit
from codesign.run.runspace import keep_space, resume_space, saved_space
from codesign.space import get_space
from codesign.space.files import space_toml
from codesign.space.fit import fit_space, fitted_resolutions, last_map, total_stride


@pytest.mark.parametrize("side", [8, 28, 32])
def test_small_images_keep_the_preset(side: int) -> None:
    for name in ("default", "tiny"):
        assert fit_space(get_space(name), side, side) is get_space(name)


@pytest.mark.parametrize("side", [40, 48, 64, 96, 100, 128, 160, 224])
def test_resolutions_follow_the_native_side_and_the_last_map_stays_small(side: int) -> None:
    space = fit_space(get_space("default"), side, side)
    res = space.resolutions
    assert res == tuple(sorted(res)) and 2 <= len(res) <= 5
    assert all(r % 8 == 0 for r in res)
    assert res[-1] == min(side, 224) // 8 * 8  # the full native side (a multiple of 8)
    assert res[0] <= 0.6 * res[-1] + 8  # down to about half of it
    assert all(3 <= last_map(space, r) <= 8 for r in res), [last_map(space, r) for r in res]
    assert space.name == f"default-{res[-1]}px"
    assert space.kernels == get_space("default").kernels  # only resolutions and strides move
    assert [st.channels for st in space.stages] == [st.channels for st in
                                                     get_space("default").stages]


def test_larger_inputs_get_extra_strides_stem_first() -> None:
    default = get_space("default")
    assert total_stride(default) == 8 and default.stem_stride == 1
    at96 = fit_space(default, 96, 96)
    assert at96.resolutions == (48, 64, 80, 96)
    assert total_stride(at96) == 16 and at96.stem_stride == 2  # the stem's stride first
    assert [st.stride for st in at96.stages] == [st.stride for st in default.stages]
    at224 = fit_space(default, 224, 224)
    assert total_stride(at224) == 32 and at224.stages[-1].stride == 2  # then the last stage
    assert fit_space(default, 1000, 1000).resolutions[-1] == 224
    assert fitted_resolutions(64) == (32, 40, 48, 56, 64)


def test_non_square_images_fit_their_shorter_side_and_say_they_are_stretched(
        tmp_path: Path) -> None:
    assert fit_space(get_space("default"), 96, 128) == fit_space(get_space("default"), 96, 96)
    rng = np.random.default_rng(0)
    path = tmp_path / "wide.npz"
    np.savez(path, x_train=rng.integers(0, 255, (40, 48, 64, 3), dtype=np.uint8),
             y_train=np.arange(40) % 2, x_test=rng.integers(0, 255, (10, 48, 64, 3),
                                                             dtype=np.uint8),
             y_test=np.arange(10) % 2)
    data = load_dataset(str(path), 0)
    assert "48x64 images are stretched" in data.preprocessing["aspect"]
    assert data_fit(str(path), 0)(get_space("default")).resolutions[-1] == 48
    assert "aspect" not in load_dataset("digits", 0).preprocessing


def test_a_new_run_fits_a_preset_and_a_resumed_one_keeps_what_it_was_made_with(
        tmp_path: Path) -> None:
    def fit(space):
        return fit_space(space, 96, 96)

    name, space = resume_space(tmp_path / "new", None, fit)
    assert name == "default" and space == fit(get_space("default"))
    assert resume_space(tmp_path / "new", "tiny", fit)[1] == fit(get_space("tiny"))
    mine = tmp_path / "mine.toml"  # a space file says what it searches: never fitted
    mine.write_text(space_toml(get_space("tiny")))
    assert resume_space(tmp_path / "new", str(mine), fit)[1] == get_space("tiny")
    run = tmp_path / "run"
    run.mkdir()
    keep_space(run, space)
    assert saved_space(run) == space
    assert resume_space(run, None, fit) == (str(run / "space.toml"), space)
    assert resume_space(run, "default", fit)[1] == space  # the same data fits the same
    with pytest.raises(CodesignError) as exc:  # other data would not: refused in one line
        resume_space(run, "default", lambda s: fit_space(s, 64, 64))
    assert "different space" in str(exc.value) and "\n" not in str(exc.value)
    # a run made with the former fixed space resumes with it
    old = tmp_path / "old"
    old.mkdir()
    former = json.loads(json.dumps(get_space("default").to_dict()))
    (old / "config.json").write_text(json.dumps({"identity": {"space": former}}))
    assert resume_space(old, None, fit)[1] == get_space("default")
