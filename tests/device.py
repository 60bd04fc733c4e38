"""The stand-in board of the remote-device tests (set up by ``tools/setup_device.sh``).

It is a real account on this machine whose Python has only numpy < 2 and
tflite-runtime 2.14, reached over a real OpenSSH server on loopback. Only the
network link to a physical board is simulated, by loopback.
"""

from __future__ import annotations

import os
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
