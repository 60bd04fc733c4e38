#!/usr/bin/env bash
# Sets up the stand-in "board" the remote-device tests reach over ssh on loopback:
# Debian's OpenSSH server, an account `codesign-device` whose Python has only
# numpy < 2 and tflite-runtime 2.14 (as a Raspberry-Pi-class board has it).
# Idempotent; quick once done. Needs root for the package and the account.
set -euo pipefail
USER_NAME=codesign-device
HOME_DIR=/home/$USER_NAME
VENV=$HOME_DIR/venv
PINS="tflite-runtime==2.14.0 numpy==1.26.4"
STAMP=$VENV/.codesign-installed

if [[ -x /usr/sbin/sshd && -f $STAMP && "$(cat "$STAMP")" == "$PINS" ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "tools/setup_device.sh: needs root to install openssh-server and add the account" \
         "$USER_NAME; run it once with sudo" >&2
    exit 1
fi
if [[ ! -x /usr/sbin/sshd ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server >/dev/null
fi
if [[ ! -x /usr/bin/python3 ]] || ! /usr/bin/python3 -c 'import venv, ensurepip' 2>/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi
id "$USER_NAME" >/dev/null 2>&1 || useradd --create-home --shell /bin/sh "$USER_NAME"
# The account needs a usable password field for sshd to let it in with a key.
usermod -p '*' "$USER_NAME"
su -s /bin/sh "$USER_NAME" -c "rm -rf $VENV && /usr/bin/python3 -m venv $VENV \
    && $VENV/bin/python -m pip install --quiet --disable-pip-version-check $PINS \
    && echo '$PINS' > $STAMP"
echo "device account $USER_NAME ready: $($VENV/bin/python -c \
    'import numpy, tflite_runtime; print("numpy", numpy.__version__, "tflite-runtime", tflite_runtime.__version__)')"
