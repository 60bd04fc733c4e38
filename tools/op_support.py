#!/usr/bin/env python3
"""Measure which precision each layer kind runs with on a runtime; print op-support entries.

Builds one model per layer kind and precision (that layer quantized alone among
float32 neighbours, as codesign converts it), runs every model with
``codesign/hardware/device_bench.py`` under the given Python (any runtime device_bench
supports: the host's ai-edge-litert, or a board's tflite-runtime) and prints
TOML ``[[entry]]`` tables for ``codesign/tflite/op_support.toml``.

    python tools/op_support.py --python /home/codesign-device/venv/bin/python
    python tools/op_support.py --tflm     # TensorFlow Lite Micro, in this process
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PROBES = {"conv": "s2b1_expand", "depthwise": "s2b1_dw", "dense": "classifier"}
RESOLVERS = ("auto", "builtin", "reference")


def build_probes(folder: Path) -> dict[tuple[str, str], Path]:
    """Write one model per (layer kind, precision); return their paths."""
    import codesign  # noqa: F401
    from codesign.data import load_dataset, resize_bilinear
    from codesign.nn.bn import recalibrate_bn
    from codesign.nn.submodel import build_submodel
    from codesign.space import get_space
    from codesign.space.candidate import PRECISIONS
    from codesign.tflite.convert import convert

    space = get_space("tiny")
    sub = space.subnet(space.max_candidate())
    model = build_submodel(space, sub, 10, 1)
    calib = resize_bilinear(load_dataset("digits", 0).x_train[:64], sub.resolution)
    recalibrate_bn(model, calib)
    paths = {}
    for kind, layer in PROBES.items():
        for precision in PRECISIONS:
            assignment = {n: "float32" for n in sub.precision}
            assignment[layer] = precision
            path = folder / f"{kind}-{precision}.tflite"
            path.write_bytes(convert(model, assignment, calib))
            paths[(kind, precision)] = path
    return paths


def main(argv: list[str] | None = None) -> int:
    """Measure and print the entries."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default=sys.executable, help="Python with the runtime to check")
    ap.add_argument("--tflm", action="store_true",
                    help="check the installed tflite-micro (TFLM prepares and invokes each)")
    args = ap.parse_args(argv)
    if args.tflm:
        return _tflm_entry()
    bench = ROOT / "codesign" / "hardware" / "device_bench.py"
    with tempfile.TemporaryDirectory() as tmp:
        paths = build_probes(Path(tmp))
        for resolver in RESOLVERS:
            cmd = [args.python, str(bench), *map(str, paths.values()), "--resolver", resolver,
                   "--runs", "3", "--warmup", "1", "--max-warmup", "10"]
            doc = json.loads(subprocess.run(cmd, capture_output=True, text=True,
                                            check=True).stdout)
            ok = {entry["model"] for entry in doc["models"] if "error" not in entry}
            print(f'\n[[entry]]\nruntime = "{doc["runtime"]["name"]}"\n'
                  f'version = "{doc["runtime"]["version"]}"\nresolver = "{resolver}"')
            for kind in PROBES:
                runs = [p for (k, p), path in paths.items() if k == kind and str(path) in ok]
                print(f"{kind} = {json.dumps(runs)}")
    return 0


def _tflm_entry() -> int:
    """Print the op-support entry of the installed tflite-micro."""
    from importlib import metadata

    from codesign.errors import TrialFailure
    from codesign.hardware import tflm

    with tempfile.TemporaryDirectory() as tmp:
        paths = build_probes(Path(tmp))
        ok = set()
        for key, path in paths.items():
            try:
                tflm.arena(path.read_bytes())
                ok.add(key)
            except TrialFailure as exc:
                print(f"# {key[0]} {key[1]}: {exc}", file=sys.stderr)
    print(f'\n[[entry]]\nruntime = "tflite-micro"\nversion = "{metadata.version("tflite-micro")}"'
          '\nresolver = "reference"')
    for kind in PROBES:
        print(f"{kind} = {json.dumps([p for (k, p) in paths if k == kind and (k, p) in ok])}")
    print("delegated = []")
    return 0


if __name__ == "__main__":
    sys.exit(main())
