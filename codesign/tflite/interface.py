"""Changing a model's input and output type (float32 to int8 or uint8) for deployment."""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from codesign.errors import CodesignError

IO_TYPES = ("float32", "int8", "uint8")
_TFLITE_TYPE = {"int8": 9, "uint8": 3}  # TensorType codes of the TFLite schema


def change_io_type(model: bytes, io_type: str) -> bytes:
    """Return ``model`` with ``io_type`` inputs and outputs.

    The model must quantize its input right away and dequantize its output at
    the end (its first and last layers are int8); those two operators are
    removed (int8) or turned into a uint8 requantization, so the caller feeds
    quantized images (see the manifest's ``quantization``).

    Raises:
        CodesignError: If ``io_type`` is unknown or the model cannot take it.
    """
    if io_type not in IO_TYPES:
        raise CodesignError(f"--io-type {io_type!r}: use one of {', '.join(IO_TYPES)}")
    if io_type == "float32":
        return model
    import codesign  # noqa: F401  (tf_keras before TensorFlow)
    from codesign.hardware.litert import io_details

    mmi = importlib.import_module(
        "tensorflow.lite.tools.optimize.python._pywrap_modify_model_interface"
    )

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.tflite", Path(tmp) / "out.tflite"
        src.write_bytes(model)
        code = _TFLITE_TYPE[io_type]
        status = mmi.modify_model_interface(str(src), str(dst), code, code)
        result = dst.read_bytes() if dst.is_file() else b""
    if status != 0 or not result:
        raise CodesignError(
            f"this model cannot take {io_type} inputs and outputs: its first and last layers "
            "must be int8; pick another point or keep --io-type float32"
        )
    io = io_details(result)
    if io["input"]["dtype"] != io_type or io["output"]["dtype"] != io_type:
        raise CodesignError(
            f"this model cannot take {io_type} inputs and outputs (got {io['input']['dtype']} "
            f"in, {io['output']['dtype']} out): its first and last layers must be int8"
        )
    return result
