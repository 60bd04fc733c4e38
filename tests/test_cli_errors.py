"""User errors: one line, exit code 2, no traceback, nothing written, no TensorFlow."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import python_prints, run_cli


def _assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--data", "nope"], ["unknown data set 'nope'", "digits"]),
        (["--trials", "0"], ["--trials", "from 1"]),
        (["--profile", "no-such"], ["unknown profile 'no-such'", "xnnpack-1t"]),
        (["--space", "huge"], ["unknown space 'huge'", "tiny"]),
        (["--sampler", "cma"], ["unknown --sampler 'cma'", "nsga2, tpe, random"]),
        (["--objectives", "latency"], ["--objectives 'latency'", "accuracy,latency,size",
                                       "accuracy,ram,flash"]),
        (["--objectives", "accuracy,flash"], ["accuracy,ram", "accuracy,latency,ram"]),
        (["--max-ram-kb", "0"], ["--max-ram-kb must be positive"]),
        (["--max-flash-kb", "-3"], ["--max-flash-kb must be positive"]),
        (["--max-memory-mb", "4"], ["--max-memory-mb is retired", "use --max-ram-kb"]),
        (["--max-latency-ms", "0"], ["--max-latency-ms must be positive"]),
        (["--min-accuracy", "95"], ["--min-accuracy is a fraction"]),
        (["--epochs", "-1"], ["--epochs"]),
        (["--trials", "ten"], ["invalid int value"]),
    ],
)
def test_search_rejects_bad_settings(tmp_path: Path, args: list[str], words: list[str]) -> None:
    out = tmp_path / "run"
    proc = run_cli("search", "--out", str(out), *args, timeout=60)
    _assert_user_error(proc, *words)
    assert not out.exists(), "nothing may be written for bad settings"


def test_out_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    _assert_user_error(run_cli("search", "--out", str(f), timeout=60), "is a file")


def test_missing_model_is_refused(tmp_path: Path) -> None:
    _assert_user_error(
        run_cli("benchmark", str(tmp_path / "none.tflite"), timeout=60), "does not exist"
    )
    _assert_user_error(
        run_cli("evaluate", str(tmp_path / "none.tflite"), timeout=60), "does not exist"
    )


def test_export_of_a_non_run_is_refused(tmp_path: Path) -> None:
    proc = run_cli("export", str(tmp_path), "--trial", "0", "--out", str(tmp_path / "m.tflite"))
    _assert_user_error(proc, "not a codesign run")


def test_validation_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from pathlib import Path; from codesign.config import SearchConfig;"
        "from codesign.preflight import preflight;"
        "preflight(SearchConfig(out=Path('x'), space='tiny'));"
        "import codesign.cli, codesign.engine.job;"
        "print('tensorflow' in sys.modules)"
    )
    assert python_prints(code) == "False"


def test_help_everywhere() -> None:
    for cmd in ([], ["search"], ["profiles"], ["export"], ["benchmark"], ["evaluate"]):
        proc = run_cli(*cmd, "--help", timeout=60)
        assert proc.returncode == 0
        assert "usage: codesign" in proc.stdout
