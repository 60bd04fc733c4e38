"""Shared fixtures: one tiny supernet and one tiny search per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.device import LoopbackBoard, require_device

ROOT = Path(__file__).resolve().parents[1]
# Latency models and their caches live per machine; tests start with none of this machine's.
os.environ["CODESIGN_HOME"] = tempfile.mkdtemp(prefix="codesign-home-")
CODESIGN = [sys.executable, "-m", "codesign.cli"]
TINY = ["--space", "tiny", "--epochs", "10", "--seed", "0", "--quality-samples", "0",
        "--finetune-epochs", "0"]
BASE_TRIALS = 8
QUALITY_SAMPLES = 3
BASE_ARGS = [*TINY[:-4], "--quality-samples", str(QUALITY_SAMPLES), "--finetune-epochs", "1",
             "--trials", str(BASE_TRIALS)]
# Every test search times every candidate unless it tests the latency modes itself (a
# latency model built by an earlier test would otherwise make hybrid the default).
TINY.extend(["--latency", "measured"])
BASE_ARGS.extend(["--latency", "measured"])
# The report (2-3 s a search) is checked on the base run, which writes it; the rest skip it,
# and the references with the noise floor (5-6 s a search) likewise.
TINY.extend(["--no-report", "--no-references"])
_BASE: list[Path] = []
_NEEDS_BASE: list[bool] = []  # whether a selected test uses base_run (set at collection)


def python_prints(code: str) -> str:
    """What a fresh Python process running ``code`` at the repository root prints."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def hooks_env(**extra: str) -> dict[str, str]:
    """Environment of a process whose evaluation child has the tests' hooks (tests/child_hooks)."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "child_hooks"),
                            os.environ.get("PYTHONPATH", "")])
    return {"CODESIGN_TEST_HOOKS": "1", "PYTHONPATH": path.rstrip(os.pathsep), **extra}


def run_cli(
    *args: str, timeout: float = 900, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run the codesign command line and capture its output."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [*CODESIGN, *args], capture_output=True, text=True, timeout=timeout, env=full_env,
        cwd=ROOT,
    )


@pytest.fixture(scope="session")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny search (trains the session's one supernet)."""
    out = tmp_path_factory.mktemp("runs") / "base"
    proc = run_cli("search", *BASE_ARGS, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    _BASE.append(out)
    return out


def pytest_terminal_summary(terminalreporter: object) -> None:
    """Print the session supernet's quality report (the figures CI shows)."""
    import json

    for run in _BASE:
        path = run / "supernet_quality.json"
        if path.is_file():
            q = json.loads(path.read_text())
            terminalreporter.write_line(  # type: ignore[attr-defined]
                f"supernet quality (tiny space, {q['samples']} sub-networks): Kendall tau "
                f"{q['kendall_tau']:.2f} inherited vs fine-tuned, noise ceiling "
                f"{q['noise_ceiling_tau']:.2f}, narrowest {q['narrowest_accuracy']:.3f}, "
                f"largest {q['largest_accuracy']:.3f}"
            )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Note whether a selected test needs the whole base run, or only its supernet.

    This runs once ``-m`` and ``-k`` have deselected what they deselect.
    """
    _NEEDS_BASE.append(any("base_run" in getattr(i, "fixturenames", ())
                           for i in session.items))


@pytest.fixture(scope="session")
def tiny_supernet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shortest search that trains the session's tiny supernet (one trial).

    Used when no selected test needs :func:`base_run` (``make test-slow``): the
    supernet is the same (same space, data, epochs and seed), the quality report,
    trials and fine-tuning of the base run are not needed.
    """
    out = tmp_path_factory.mktemp("runs") / "supernet"
    proc = run_cli("search", "--data", "digits", *TINY, "--trials", "1", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    return out


@pytest.fixture
def seeded_run(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    """A fresh run directory that already holds the session's tiny supernet."""
    src = request.getfixturevalue("base_run" if any(_NEEDS_BASE) else "tiny_supernet")
    out = tmp_path / "run"
    out.mkdir()
    for name in ("supernet.npz", "supernet.json"):
        shutil.copy(src / name, out / name)
    return out


@pytest.fixture(scope="session")
def board(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackBoard]:
    """The stand-in board, started once per test session."""
    require_device()
    folder = Path(tempfile.mkdtemp(prefix="codesign-board-"))
    b = LoopbackBoard(folder)
    b.start()
    yield b
    b.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def built() -> Path:
    """A small latency model of the default profile, built for real (the session's home)."""
    proc = run_cli("profile", "build", "xnnpack-1t", "--blocks", "20", "--whole", "6",
                   "--budget-min", "0.02")  # about a second: too few networks to fit
    assert proc.returncode == 2 and "rerun codesign profile build" in proc.stderr
    first = list(Path(os.environ["CODESIGN_HOME"]).glob(
        "latency/xnnpack-1t-*.measurements.jsonl"))[0]
    partial = len(first.read_text().splitlines())
    assert partial < 26  # the time budget stopped it early ...
    proc = run_cli("profile", "build", "xnnpack-1t", "--blocks", "20", "--whole", "6")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "20 block and 6 whole networks" in proc.stdout
    from codesign.latency.convert_pool import workers

    if workers() > 1:  # the rest converted in parallel processes before the timing
        assert f"converting in {workers()} processes" in proc.stdout + proc.stderr
    from codesign.latency.measure import read_records

    records = read_records(first)  # the last line of each network counts
    assert len(records) == 26  # ... and the rerun measured the rest
    for rec in records.values():  # each timed in two passes here, the faster one kept
        assert rec["passes"] == 2 and len(rec["medians_ms"]) == 2
        assert rec["median_ms"] == min(rec["medians_ms"])
    return first


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A throwaway PostgreSQL cluster on loopback with a password login (as a real server)."""
    from codesign.scale.pgcluster import Cluster, find_bindir

    if find_bindir() is None:
        pytest.fail("PostgreSQL is missing: run tools/setup_postgres.sh (make test does)")
    cluster = Cluster().init()
    yield cluster
    cluster.destroy()
