"""How a profile reaches its device: this machine, or a board behind commands.

A ``command`` runner copies models and ``codesign/hardware/device_bench.py`` to the device
with the profile's ``push`` template and runs device_bench there with its
``shell`` template (``scp`` + ``ssh``, ``adb push`` + ``adb shell``, ...).
Templates are argument lists, run without a local shell. The one string that a
remote shell does see, ``{command}``, is built here with every piece quoted, and
the models travel under names chosen here; nothing the user named reaches a
shell unquoted.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codesign.errors import DeviceUnavailable, TrialFailure

KINDS = ("local", "command")
DEVICE_BENCH = Path(__file__).with_name("device_bench.py")  # standalone: imports no codesign
SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]+$")
SSH_ERROR = 255  # ssh's own failure (no connection, refused key), not the remote command's


@dataclass(frozen=True)
class RunnerSpec:
    """The ``[runner]`` table of a profile.

    Attributes:
        kind: ``local`` (this machine's runtime) or ``command``.
        device: Name of the device: its lock, and its label in messages.
        push: Argument template that copies files: ``{files}`` (one argument
            per file) and ``{dest}`` (the remote folder).
        shell: Argument template that runs a command on the device: ``{command}``.
        python: The device's Python.
        remote_dir: Folder on the device for the models (relative to the
            login folder, or absolute).
        timeout_s: Time-out of one copy or one run.
        wait_s: How long a search waits for a device that dropped out before
            it stops (the run resumes with the same command).
    """

    kind: str = "local"
    device: str = "local"
    push: tuple[str, ...] = ()
    shell: tuple[str, ...] = ()
    python: str = "python3"
    remote_dir: str = "codesign-bench"
    timeout_s: float = 120.0
    wait_s: float = 600.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form."""
        return {"kind": self.kind, "device": self.device, "push": list(self.push),
                "shell": list(self.shell), "python": self.python,
                "remote_dir": self.remote_dir, "timeout_s": self.timeout_s,
                "wait_s": self.wait_s}


def parse_runner(raw: Any, fail: Any) -> RunnerSpec:
    """Validate a profile's ``[runner]`` table.

    Args:
        raw: The table (or None when the profile has none: local).
        fail: ``fail(field, why)`` returns the error to raise.
    """
    if raw is None:
        return RunnerSpec()
    if not isinstance(raw, dict):
        raise fail("runner", "must be a table")
    kind = raw.get("kind", "local")
    if kind not in KINDS:
        raise fail("runner.kind", f"is {kind!r}; allowed: {', '.join(KINDS)}")
    known = {"kind", "device", "push", "shell", "python", "remote_dir", "timeout_s", "wait_s"}
    unknown = sorted(set(raw) - known)
    if unknown:
        allowed = ", ".join(sorted(known))
        raise fail(f"runner.{unknown[0]}", f"is not a runner field; known: {allowed}")
    if kind == "local":
        return RunnerSpec()
    device = raw.get("device")
    if not isinstance(device, str) or not SAFE_NAME.match(device):
        raise fail("runner.device", "must name the device: letters, digits and . - _ : @")
    push = _template(raw.get("push"), ("{files}", "{dest}"), "runner.push", fail)
    shell = _template(raw.get("shell"), ("{command}",), "runner.shell", fail)
    if "{files}" not in push:
        raise fail("runner.push", "must hold \"{files}\" as an argument of its own")
    python = raw.get("python", "python3")
    remote_dir = raw.get("remote_dir", "codesign-bench")
    for name, value in (("python", python), ("remote_dir", remote_dir)):
        if not isinstance(value, str) or not SAFE_PATH.match(value):
            raise fail(f"runner.{name}", "must be a path of letters, digits, '.', '-', '_', '/'")
    limits = {}
    for name, default in (("timeout_s", 120.0), ("wait_s", 600.0)):
        value = raw.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
            raise fail(f"runner.{name}", f"is {value!r}; allowed: seconds from 0 to 86400")
        limits[name] = float(value)
    return RunnerSpec(kind="command", device=device, push=push, shell=shell, python=python,
                      remote_dir=remote_dir, **limits)


def _template(value: Any, needed: tuple[str, ...], name: str, fail: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise fail(name, "must be a non-empty list of strings (the command's arguments)")
    text = " ".join(value)
    for placeholder in needed:
        if placeholder not in text:
            raise fail(name, f"must use {placeholder}")
    return tuple(value)


def expand(template: Sequence[str], **values: str | list[str]) -> list[str]:
    """Fill a template: a list value replaces an argument that is exactly its placeholder.

    Plain text replacement (no ``str.format``), so braces in other arguments
    stay as they are.
    """
    out: list[str] = []
    for arg in template:
        whole = arg[1:-1] if arg.startswith("{") and arg.endswith("}") else None
        if whole in values and isinstance(values[whole], list):
            out.extend(values[whole])  # type: ignore[arg-type]
            continue
        for key, value in values.items():
            if isinstance(value, str):
                arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


@dataclass
class BenchSettings:
    """What device_bench is asked to do.

    Attributes:
        threads: Interpreter threads.
        resolver: Op resolver.
        warmup: Fewest warm-up runs.
        runs: Timed runs.
    """

    threads: int
    resolver: str
    warmup: int
    runs: int

    def args(self) -> list[str]:
        """device_bench's arguments."""
        return ["--threads", str(self.threads), "--resolver", self.resolver,
                "--warmup", str(self.warmup), "--runs", str(self.runs)]


class CommandRunner:
    """Measures models on a device reached through the profile's commands.

    Args:
        spec: The runner table.
        bench: device_bench settings.
    """

    def __init__(self, spec: RunnerSpec, bench: BenchSettings) -> None:
        self.spec = spec
        self.bench = bench
        self._prepared = False

    def _run(self, argv: list[str], what: str) -> str:
        """Run one command; a connection problem raises DeviceUnavailable."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=self.spec.timeout_s, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise DeviceUnavailable(
                f"device {self.spec.device}: {argv[0]} is not installed here"
            ) from None
        except subprocess.TimeoutExpired:
            raise DeviceUnavailable(
                f"device {self.spec.device}: {what} gave no answer within "
                f"{self.spec.timeout_s:.0f} s"
            ) from None
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
            why = " / ".join(lines)[-400:] if lines else f"exit code {proc.returncode}"
            if what == "measuring" and proc.returncode != SSH_ERROR:
                raise TrialFailure(
                    f"device {self.spec.device}: device_bench failed "
                    f"(exit code {proc.returncode}): {why}"
                )
            raise DeviceUnavailable(f"device {self.spec.device}: {what} failed: {why}")
        return proc.stdout

    def remote(self, command: list[str], what: str) -> str:
        """Run ``command`` (quoted here) on the device; return its output."""
        return self._run(expand(self.spec.shell, command=shlex.join(command)), what)

    def _prepare(self) -> None:
        if not self._prepared:
            self.remote(["mkdir", "-p", self.spec.remote_dir], "connecting")
            self._prepared = True

    def probe(self) -> dict[str, Any]:
        """The device's runtime and machine facts (device_bench with no model)."""
        self._prepare()
        with tempfile.TemporaryDirectory(prefix="codesign-push-") as tmp:
            staged = Path(tmp) / "device_bench.py"
            shutil.copyfile(DEVICE_BENCH, staged)
            self._run(expand(self.spec.push, files=[str(staged)], dest=self.spec.remote_dir + "/"),
                      "copying")
        bench = f"{self.spec.remote_dir}/device_bench.py"
        out = self.remote([self.spec.python, bench], "measuring")
        return _parse_doc(out, self.spec.device)

    def measure(self, paths: Sequence[str | Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Time every model on the device in one batch.

        Returns:
            The device's facts and one entry per model (figures, or ``error``).

        Raises:
            DeviceUnavailable: The device could not be reached or did not answer.
            TrialFailure: device_bench itself failed on the device.
        """
        self._prepare()
        with tempfile.TemporaryDirectory(prefix="codesign-push-") as tmp:
            names = [f"m{i:04d}.tflite" for i in range(len(paths))]
            staged = []
            for src, name in zip(paths, names, strict=True):
                dst = Path(tmp) / name
                shutil.copyfile(src, dst)
                staged.append(str(dst))
            shutil.copyfile(DEVICE_BENCH, Path(tmp) / "device_bench.py")
            staged.append(str(Path(tmp) / "device_bench.py"))
            self._run(expand(self.spec.push, files=staged, dest=self.spec.remote_dir + "/"),
                      "copying")
        remote = [f"{self.spec.remote_dir}/{n}" for n in names]
        t0 = time.perf_counter()
        out = self.remote(
            [self.spec.python, f"{self.spec.remote_dir}/device_bench.py", *self.bench.args(),
             *remote], "measuring")
        doc = _parse_doc(out, self.spec.device)
        doc["seconds"] = time.perf_counter() - t0
        entries = doc.pop("models")
        if len(entries) != len(paths):
            raise DeviceUnavailable(f"device {self.spec.device}: answered for {len(entries)} "
                                    f"of {len(paths)} models")
        for entry, src in zip(entries, paths, strict=True):
            entry["model"] = str(src)
        try:
            self.remote(["rm", "-f", *remote], "cleaning up")
        except DeviceUnavailable:
            pass  # leftovers are overwritten next time
        return doc, entries


def _parse_doc(out: str, device: str) -> dict[str, Any]:
    try:
        doc = json.loads(out)
    except json.JSONDecodeError:
        first = (out.strip().splitlines() or ["nothing"])[0][:200]
        msg = f"device {device}: device_bench printed no JSON ({first})"
        raise DeviceUnavailable(msg) from None
    if not isinstance(doc, dict) or "runtime" not in doc or "models" not in doc:
        raise DeviceUnavailable(f"device {device}: device_bench's answer lacks runtime or models")
    return doc


def stats_of(entry: dict[str, Any]) -> dict[str, Any]:
    """device_bench's figures of one model in codesign's ``latency_ms`` layout.

    Raises:
        TrialFailure: The model failed on the device (its error).
    """
    if "error" in entry:
        raise TrialFailure(f"the device cannot run the model: {entry['error'][:500]}")
    return {
        "median": entry["median_ms"], "p90": entry["p90_ms"], "mean": entry["mean_ms"],
        "std": entry["std_ms"], "min": entry["min_ms"], "runs": entry["runs"],
        "warmup": entry["warmup_runs"], "host_rss_growth_mb": entry.get("peak_memory_mb"),
    }
