"""A profile whose device is a board behind ssh: a real sshd on loopback, a device account
whose Python has only numpy 1.x and tflite-runtime 2.14 (tests/device.py)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from codesign.errors import CodesignError, DeviceUnavailable
from codesign.hardware.profile import load_profile
from codesign.hardware.runner import BenchSettings, CommandRunner, expand
from tests.conftest import TINY, run_cli
from tests.device import DEVICE_USER, LoopbackBoard, tiny_models

SETTINGS = BenchSettings(threads=1, resolver="auto", warmup=2, runs=5)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A float32 and an int8 tiny model under hostile names, and a file that is no model."""
    names = ("it's a \"float\" model; touch PWNED.tflite", "$(touch PWNED) int8.tflite")
    return tiny_models(tmp_path_factory.mktemp("remote models"), names)


def test_measures_on_the_board_with_hostile_names(board: LoopbackBoard, models) -> None:
    runner = CommandRunner(load_profile(board.profile()).runner, SETTINGS)
    facts, entries = runner.measure(models)
    assert facts["runtime"]["name"] == "tflite-runtime"
    assert facts["runtime"]["version"] == "2.14.0"
    assert facts["runtime"]["numpy"].startswith("1.")
    assert [e["model"] for e in entries] == [str(p) for p in models]
    assert all(e["median_ms"] > 0 for e in entries[:2])
    assert "error" in entries[2]
    home = Path(f"/home/{DEVICE_USER}")
    assert not list(home.rglob("PWNED*")) and not list(models[0].parent.glob("PWNED*"))


def test_template_fields_are_checked(board: LoopbackBoard) -> None:
    with pytest.raises(CodesignError, match="runner.remote_dir"):
        load_profile(board.profile("bad1", remote_dir="x; rm -rf ~"))
    with pytest.raises(CodesignError, match=r"runner.shell.*\{command\}"):
        load_profile(board.profile("bad2", shell=["ssh", "host", "python3"]))
    with pytest.raises(CodesignError, match="runner.kind"):
        load_profile(board.profile("bad3", kind="telnet"))
    assert expand(["a", "{files}", "x{dest}y"], files=["1", "2"], dest="/d") == [
        "a", "1", "2", "x/dy"]


def test_a_device_that_is_down_or_silent_is_unavailable(board: LoopbackBoard, models) -> None:
    closed = LoopbackBoard.__new__(LoopbackBoard)
    closed.folder, closed.port = board.folder, board.port + 1 if board.port < 65000 else 1025
    refused = CommandRunner(load_profile(closed.profile("closed")).runner, SETTINGS)
    with pytest.raises(DeviceUnavailable, match="Connection refused"):
        refused.measure(models[:1])
    slow_shell = ["sh", "-c", "sleep 5", "{command}"]
    silent = load_profile(board.profile("silent", timeout_s=1, shell=slow_shell))
    with pytest.raises(DeviceUnavailable, match="no answer within 1 s"):
        CommandRunner(silent.runner, SETTINGS).measure(models[:1])


def test_the_device_runtime_must_match_the_profile(board: LoopbackBoard) -> None:
    text = board.profile().read_text().replace('version = "2.14.0"', 'version = "2.13.0"')
    wrong = board.folder / "wrong.toml"
    wrong.write_text(text.replace('name = "loopback-board"', 'name = "wrong"'))
    proc = run_cli("search", "--data", "digits", "--profile", str(wrong), "--out",
                   str(board.folder / "never"))
    assert proc.returncode == 2
    assert "runs tflite-runtime 2.14.0" in proc.stderr and "Traceback" not in proc.stderr


def _states(db: Path) -> list[tuple[str, str | None]]:
    """(state, fail_reason) of every trial, read with plain SQL while the search runs."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        rows = con.execute(
            "SELECT t.state, (SELECT value_json FROM trial_user_attributes a WHERE "
            "a.trial_id = t.trial_id AND a.key = 'fail_reason') FROM trials t"
        ).fetchall()
        con.close()
        return rows
    except sqlite3.Error:
        return []


@pytest.mark.e2e
@pytest.mark.slow  # a whole run of several processes, killed or cut off: make test-slow
def test_search_over_ssh_survives_a_dropout(board: LoopbackBoard, seeded_run: Path) -> None:
    """A search measures on the board; sshd stops mid-search and comes back; nothing is lost."""
    profile = board.profile("dropout")
    db = seeded_run / "study.db"
    events: list[str] = []

    def saboteur() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if sum(s == "COMPLETE" for s, _ in _states(db)) >= 2:
                break
            time.sleep(0.2)
        board.stop()
        events.append("stopped")
        while time.monotonic() < deadline:
            if any(r and "device unavailable" in r for _, r in _states(db)):
                break
            time.sleep(0.2)
        time.sleep(2)
        board.start()
        events.append("started")

    thread = threading.Thread(target=saboteur, daemon=True)
    thread.start()
    try:
        with_refs = [a for a in TINY if a != "--no-references"]  # timed on the board too
        proc = run_cli("search", "--data", "digits", *with_refs, "--finetune-epochs", "0",
                       "--trials", "6", "--profile", str(profile), "--out", str(seeded_run))
    finally:
        thread.join(timeout=60)
        if board.proc is None:
            board.start()
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    assert events == ["stopped", "started"]
    assert "waiting up to 120 s" in proc.stdout and "is back" in proc.stdout
    states = _states(db)
    assert sum(s == "COMPLETE" for s, _ in states) == 6
    reasons = [json.loads(r) for s, r in states if s == "FAIL" and r]
    assert reasons and all("device unavailable" in r for r in reasons)
    assert "Connection refused" in reasons[0]
    doc = json.loads((seeded_run / "pareto.json").read_text())
    for point in [*doc["points"], *doc["references"]]:
        assert point["latency_ms"]["runtime"] == "tflite-runtime 2.14.0"
        assert point["latency_ms"]["device"] == f"codesign-device@127.0.0.1:{board.port}"
