#!/usr/bin/env bash
# Build the wheel, install it (not editable) into a fresh venv away from the source tree, and run
# codesign from it: the shipped profiles, the op-support table, the device script and the space
# presets must come with the wheel. Used by `make wheel-check` and CI.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${PY:-python3.11}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$root/.venv/bin/python" -m pip wheel "$root" --no-deps --no-build-isolation -q -w "$work/dist"
wheel="$(ls "$work"/dist/codesign-*.whl)"
echo "built $(basename "$wheel"): $(unzip -l "$wheel" | grep -c '\.toml$') .toml files inside"
"$py" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "$wheel" -c "$root/requirements.lock"
cd "$work"  # nothing may be found through the source tree
export CODESIGN_HOME="$work/home"
bin="$work/venv/bin"
"$bin/codesign" --version
"$bin/codesign" profiles
"$bin/python" - <<'PY'
import codesign
from pathlib import Path
from codesign.hardware.profile import PROFILE_DIR
from codesign.hardware.runner import DEVICE_BENCH
site = Path(codesign.__file__).parent
assert PROFILE_DIR.is_relative_to(site), PROFILE_DIR
assert DEVICE_BENCH.is_file() and DEVICE_BENCH.is_relative_to(site), DEVICE_BENCH
from codesign.space import PRESETS
from codesign.space.files import PRESET_DIR
assert PRESET_DIR.is_relative_to(site) and list(PRESETS) == ["default", "tiny"], PRESET_DIR
import tf_keras as keras
from codesign.tflite.convert import convert_float
inp = keras.Input((16, 16, 3))
x = keras.layers.Conv2D(8, 3, activation="relu")(inp)
out = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(x))
Path("m.tflite").write_bytes(convert_float(keras.Model(inp, out)))
print(f"profiles from {PROFILE_DIR}, spaces from {PRESET_DIR}, device script {DEVICE_BENCH}")
PY
"$bin/codesign" benchmark m.tflite --profile xnnpack-1t
printf 'space = "tiny"\ntrials = 0\nout = "r"\n' >c.toml  # --config and the presets, refused early
if "$bin/codesign" search --config c.toml 2>err.txt; then exit 1; fi
grep "set by trials in c.toml" err.txt
"$bin/python" "$("$bin/python" -c 'from codesign.hardware.runner import DEVICE_BENCH; print(DEVICE_BENCH)')" m.tflite --runs 10 >bench.json
head -c 300 bench.json
echo
echo "wheel check passed"
