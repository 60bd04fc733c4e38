"""The stand-in board of the remote-device tests (set up by ``tools/setup_device.sh``).

It is a real account on this machine whose Python has only numpy < 2 and
tflite-runtime 2.14, reached over a real OpenSSH server on loopback. Only the
network link to a physical board is simulated, by loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEVICE_USER = os.environ.get("CODESIGN_DEVICE_USER", "codesign-device")
DEVICE_PYTHON = os.environ.get(
    "CODESIGN_DEVICE_PYTHON", f"/home/{DEVICE_USER}/venv/bin/python"
)
SSHD = "/usr/sbin/sshd"


def require_device() -> None:
    """Fail (not skip) with the set-up command when the stand-in board is missing."""
    missing = [p for p in (DEVICE_PYTHON, SSHD) if not Path(p).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run tools/setup_device.sh (make test does)")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackBoard:
    """A real OpenSSH server on loopback in front of the device account.

    Args:
        folder: Where keys, configuration and profiles are written.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        folder.chmod(0o755)  # the device account reads authorized_keys here
        for name in ("host_key", "client_key"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(folder / name)], check=True)
        shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
        (folder / "authorized_keys").chmod(0o644)
        (folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\n"
            f"PidFile {folder}/sshd.pid\nAuthorizedKeysFile {folder}/authorized_keys\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
            f"PubkeyAuthentication yes\nUsePAM no\nStrictModes no\nAllowUsers {DEVICE_USER}\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n"
        )

    def start(self) -> None:
        """Start sshd and wait until it accepts connections."""
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.folder / "sshd_config")],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "sshd.log", "ab"),  # noqa: SIM115
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not start: {(self.folder / 'sshd.log').read_text()}")

    def stop(self) -> None:
        """Stop sshd: new connections are refused."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def ssh_options(self) -> list[str]:
        """Options shared by scp and ssh."""
        return ["-i", str(self.folder / "client_key"), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "ConnectTimeout=5", "-o", "LogLevel=ERROR"]

    def profile(self, name: str = "loopback-board", **runner: object) -> Path:
        """Write a profile that reaches this board; ``runner`` overrides runner fields."""
        opts = self.ssh_options()
        fields = {
            "kind": "command",
            "device": f"{DEVICE_USER}@127.0.0.1:{self.port}",
            "python": DEVICE_PYTHON,
            "remote_dir": "codesign-bench",
            "timeout_s": 60,
            "wait_s": 120,
            "push": ["scp", "-P", str(self.port), *opts, "{files}",
                     f"{DEVICE_USER}@127.0.0.1:{{dest}}"],
            "shell": ["ssh", "-p", str(self.port), *opts, f"{DEVICE_USER}@127.0.0.1",
                      "{command}"],
            **runner,
        }
        lines = [
            "schema_version = 1", f'name = "{name}"',
            'description = "tflite-runtime 2.14 in a device account, over ssh on loopback"',
            "[runtime]", 'name = "tflite-runtime"', 'version = "2.14.0"', 'resolver = "auto"',
            "threads = 1", 'precisions = ["float32", "float16", "int8"]',
            "[measure]", "warmup_runs = 5", "runs = 30", "[runner]",
            *(f"{k} = {json.dumps(v)}" for k, v in fields.items()),
        ]
        path = self.folder / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path


def tiny_models(folder: Path, names: tuple[str, str]) -> list[Path]:
    """A float32 and an int8 model of the tiny space under ``names``, then a file that is
    no model (``broken.tflite``)."""
    import codesign  # noqa: F401
    from codesign.data import load_dataset, resize_bilinear
    from codesign.nn.submodel import build_submodel
    from codesign.space import get_space
    from codesign.tflite.convert import convert

    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    model = build_submodel(space, sub, 10, 1)
    x = resize_bilinear(load_dataset("digits", 0).x_train[:32], sub.resolution)
    paths = []
    for name, prec in zip(names, ("float32", "int8"), strict=True):
        path = folder / name
        path.write_bytes(convert(model, {n: prec for n in space.layer_names()}, x))
        paths.append(path)
    bad = folder / "broken.tflite"
    bad.write_bytes(b"\x01" * 100)
    return [*paths, bad]
