"""The manifest written beside every exported ``.tflite``: what a deployer needs."""

from __future__ import annotations

from typing import Any

MANIFEST_VERSION = 2  # 2 adds tensor_arena_bytes, ram and flash_bytes
ARENA_NOTE = {
    "tflm": "the smallest arena TensorFlow Lite Micro prepared and ran the model in, on this "
            "64-bit host (recorded_bytes: what its recording allocator kept; preparing borrows "
            "a little more); a 32-bit microcontroller's structs are smaller, so it suffices there",
    "estimate": "estimated from the file as TFLM's greedy planner packs the activations (the "
                "tail roughly); search with the tflm profile to measure it",
}


def brief(result: dict[str, Any]) -> dict[str, Any]:
    """Validation and test accuracy and latency median of one measurement."""
    return {
        "val_accuracy": result["val_accuracy"],
        "test_accuracy": result["test_accuracy"],
        "latency_ms": result["latency_ms"]["median"],
    }


def build_manifest(
    trial: int | None,
    attrs: dict[str, Any],
    data_info: dict[str, Any],
    profile_info: dict[str, Any],
) -> dict[str, Any]:
    """Return the manifest of one evaluated candidate.

    Args:
        trial: Trial number (``None`` for a reference network).
        attrs: The trial's user attributes (or a reference's measurements).
        data_info: ``{"name", "seed", "labels", "preprocessing"}`` of the data set.
        profile_info: The profile as a dict.

    Returns:
        A JSON-serializable manifest.
    """
    io = attrs["io"]
    resolution = attrs["candidate"]["resolution"]
    return {
        "manifest_version": MANIFEST_VERSION,
        "trial": trial,
        "input": {
            "shape": [1, *io["input"]["shape"][1:]],
            "batch": "dynamic (the file's batch dimension is -1; 1 is the measured case)",
            "dtype": io["input"]["dtype"],
            "quantization": io["input"]["quantization"],
        },
        "output": {
            "shape": [1, *io["output"]["shape"][1:]],
            "dtype": io["output"]["dtype"],
            "quantization": io["output"]["quantization"],
            "meaning": "logits, one per label",
        },
        "preprocessing": {**data_info["preprocessing"], "resolution": resolution},
        "labels": list(data_info["labels"]),
        "data": {"name": data_info["name"], "split_seed": data_info["seed"]},
        "profile": {
            k: profile_info[k]
            for k in ("name", "runtime", "runtime_version", "resolver", "threads")
        },
        "latency_ms": attrs["latency_ms"],
        "val_accuracy": attrs["val_accuracy"],
        "test_accuracy": attrs["test_accuracy"],
        "size_bytes": attrs["size_bytes"],
        "size_gzip_bytes": attrs["size_gzip_bytes"],
        "flash_bytes": attrs["size_bytes"],
        "tensor_arena_bytes": (attrs.get("ram") or {}).get("bytes"),
        "ram": _ram(attrs.get("ram")),
        "layers": attrs["layers"],
        "candidate": attrs["candidate"],
        "finetune": attrs.get("finetune"),
    }


def _ram(ram: dict[str, Any] | None) -> dict[str, Any] | None:
    """The arena's parts and where the figure comes from, for a deployer."""
    if not ram or ram.get("bytes") is None:
        return None
    return {"head_bytes": ram["head_bytes"], "tail_bytes": ram["tail_bytes"],
            "recorded_bytes": ram.get("recorded_bytes"), "source": ram["source"],
            "note": ARENA_NOTE.get(ram["source"], "")}
