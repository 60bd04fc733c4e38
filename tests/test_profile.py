"""Hardware profiles: loading the shipped ones and refusing malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest

from codesign.errors import CodesignError
from codesign.hardware.profile import PROFILE_DIR, list_profiles, load_profile

GOOD = """
schema_version = 1
name = "p"
description = "test profile"
[runtime]
name = "ai-edge-litert"
version = "2.3.0"
resolver = "auto"
threads = 1
precisions = ["float32", "int8"]
[measure]
warmup_runs = 5
runs = 10
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "p.toml"
    p.write_text(text)
    return p


def test_shipped_default_loads() -> None:
    prof = load_profile("xnnpack-1t")
    assert prof.threads == 1 and prof.resolver == "auto"
    assert prof.path == str(PROFILE_DIR / "xnnpack-1t.toml")
    assert "xnnpack-1t" in [p.name for p in list_profiles()]


def test_good_file_loads(tmp_path: Path) -> None:
    prof = load_profile(_write(tmp_path, GOOD))
    assert (prof.name, prof.warmup_runs, prof.runs) == ("p", 5, 10)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('resolver = "auto"', 'resolver = "gpu"', "runtime.resolver"),
        ("threads = 1", "threads = 0", "runtime.threads"),
        ("threads = 1", 'threads = "1"', "runtime.threads"),
        ("schema_version = 1", "schema_version = 7", "schema_version"),
        ('name = "ai-edge-litert"', 'name = "onnx"', "runtime.name"),
        ('precisions = ["float32", "int8"]', 'precisions = ["int3"]', "runtime.precisions"),
        ("runs = 10", "runs = 1", "measure.runs"),
        ('version = "2.3.0"\n', "", "runtime.version"),
    ],
)
def test_malformed_field_is_named(tmp_path: Path, old: str, new: str, field: str) -> None:
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(CodesignError) as err:
        load_profile(path)
    msg = str(err.value)
    assert str(path) in msg and repr(field) in msg


def test_invalid_toml_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CodesignError, match="not valid TOML"):
        load_profile(_write(tmp_path, "name = [unclosed"))


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CodesignError, match="does not exist"):
        load_profile(tmp_path / "absent.toml")


def test_profile_for_another_runtime_version_is_refused(tmp_path: Path) -> None:
    from codesign.config import SearchConfig
    from codesign.preflight import preflight

    path = _write(tmp_path, GOOD.replace('version = "2.3.0"', 'version = "9.9.9"'))
    with pytest.raises(CodesignError, match="9.9.9 but 2.3.0 is installed"):
        preflight(SearchConfig(out=tmp_path / "run", profile=str(path)))


def test_example_device_profiles_load() -> None:
    from codesign.hardware.profile import EXAMPLE_DIR
    from codesign.tflite.support import lookup

    examples = list_profiles(EXAMPLE_DIR)
    assert {p.name for p in examples} == {"rpi4-ssh", "android-adb"}
    for p in examples:
        assert p.remote and p.runtime == "tflite-runtime"
        assert "{command}" in p.runner.shell and "{files}" in p.runner.push
        support = lookup(p.runtime, p.runtime_version, p.resolver)
        assert "int4" not in support.runs["conv"] and "int4" not in p.precisions


def test_a_local_profile_cannot_name_a_device_runtime(tmp_path: Path) -> None:
    text = GOOD.replace('name = "ai-edge-litert"', 'name = "tflite-runtime"')
    with pytest.raises(CodesignError, match="only on a device"):
        load_profile(_write(tmp_path, text))
