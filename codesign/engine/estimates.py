"""What the set-up stages of a search are expected to take, and how big they are by default.

Estimates come from the arithmetic of the work (multiply-accumulates of the
networks, images, epochs, samples) and rates measured on a 2-core x86 machine
(training: 2026-12-01, the default space with its 7x7 depthwise kernels, at 32
and 96 px); a faster or busier machine differs, so the stages after the
supernet follow its real training time (:func:`pace`), and every stage's
progress bar shows the real rate once it runs. Pure Python: no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from codesign.latency.features import kernels
from codesign.space.family import SpaceSpec

# Training throughput of tf_keras on 2 cores: seconds per million multiply-accumulates of a
# forward pass, per image and epoch (backward pass included), plus a fixed cost per step.
# Measured quiet on 1,600 RGB images: the default space's supernet took 1.8x (32 px) and
# 1.9x (96 px) the time the former rates (2.4e-4, 0.012, from before the 7x7 kernels) said.
TRAIN_S_PER_MMAC_IMAGE = 4.44e-4
TRAIN_S_PER_STEP = 0.022
BATCH = 64
SANDWICH = 4  # networks per step of nested training (largest, smallest, two random)
FULL_FRACTION = 0.25  # share of the epochs that train the maximal network alone
SUBNET_COST = 0.55  # an average sub-network's arithmetic, relative to the maximal network
MASKED_COST = 0.9  # a sub-network trained through the masked supernet, relative to the maximal
SUPERNET_TARGET_S = 370.0  # default supernet training time here (the epochs of 200 s before)
BUDGET_SUPERNET_SHARE = 0.4  # under --time-budget-min: the supernet's share of the budget
BUDGET_QUALITY_SHARE = 0.1  # ... and the quality report's
MIN_EPOCHS, MAX_EPOCHS = 10, 40
EVAL_S = 1.0  # build, recalibration and evaluation of one sub-network
FINETUNE_FIXED_S = 6.0  # tracing and compiling of one fine-tuning, whatever its epochs
PACE_RANGE = (0.5, 4.0)  # the supernet's real time over its estimate, as applied to later stages
FLOAT_SAMPLE_S = 0.15  # one float predictor sample through the masked supernet
QUANT_SAMPLE_S = 1.5  # one converted, quantized predictor sample
SCREEN_SAMPLE_S = 0.2  # one quantized predictor sample screened with rounded weights
CONVERT_S = 0.8  # one sampled network converted for a latency model (uncached)
TIME_S = 0.6  # one timing in a search (windows spread over 0.5 s, warm-up included)
NOISE_REPEATS = 5  # timings of the noise floor
QUALITY_SHARE = 0.2  # the quality report's time, at most this share of the supernet's
QUALITY_MIN, QUALITY_MAX = 5, 20  # sub-networks in a default quality report
QUALITY_MIN_TRIALS = 10  # fewer trials asked: no quality report by default


@dataclass(frozen=True)
class DataShape:
    """What the estimates need of a data set.

    Attributes:
        images: Training images.
        channels: Image channels.
        num_classes: Classes.
    """

    images: int
    channels: int
    num_classes: int


def max_mmacs(space: SpaceSpec, data: DataShape) -> float:
    """Forward multiply-accumulates (millions) of the maximal network, averaged over resolutions."""
    top = space.max_candidate()
    total = 0.0
    for res in space.resolutions:
        cand = replace(top, resolution=res)
        total += sum(k.macs for k in kernels(space, cand, data.num_classes, data.channels))
    return total / len(space.resolutions) / 1e6


def network_epoch_s(space: SpaceSpec, data: DataShape, cost: float = 1.0) -> float:
    """Seconds of one training epoch of one network (``cost``: its share of the maximal one)."""
    steps = max(1, data.images // BATCH)
    return (data.images * max_mmacs(space, data) * cost * TRAIN_S_PER_MMAC_IMAGE
            + steps * TRAIN_S_PER_STEP)


def supernet_s(space: SpaceSpec, data: DataShape, epochs: int) -> float:
    """Expected seconds of supernet training."""
    full = round(epochs * FULL_FRACTION) if epochs > 1 else 0
    nested = epochs - full
    # a masked sub-network computes every channel of the maximal network (masks zero them)
    return network_epoch_s(space, data) * (full + nested * SANDWICH * MASKED_COST)


def auto_epochs(space: SpaceSpec, data: DataShape, budget_min: float | None = None) -> int:
    """Supernet epochs sized to the data and the budget, 10 to 40.

    About :data:`SUPERNET_TARGET_S` of training here; under a time budget, at
    most :data:`BUDGET_SUPERNET_SHARE` of it, so that trials get time too.
    """
    per_epoch = supernet_s(space, data, 40) / 40
    target = SUPERNET_TARGET_S
    if budget_min is not None:
        target = min(target, BUDGET_SUPERNET_SHARE * 60.0 * budget_min)
    return int(max(MIN_EPOCHS, min(MAX_EPOCHS, target // max(per_epoch, 1e-6))))


def pace(train_s: float, space: SpaceSpec, data: DataShape, epochs: int) -> float:
    """How much longer than estimated the supernet trained here (later estimates follow it).

    The training rates are from one machine, and TensorFlow pays more for some
    layers than their multiply-accumulates say (the 7x7 depthwise kernels), so
    the stages after the supernet scale their estimates by what its training
    really took, within :data:`PACE_RANGE`.

    Args:
        train_s: Seconds the supernet's training took (0: unknown, as for a
            supernet reused without its time).
        space: The space.
        data: The data.
        epochs: Its epochs.

    Returns:
        Real over estimated seconds; 1.0 when unknown.
    """
    if train_s <= 0:
        return 1.0
    ratio = train_s / max(supernet_s(space, data, epochs), 1e-6)
    return min(max(ratio, PACE_RANGE[0]), PACE_RANGE[1])


def quality_sample_s(space: SpaceSpec, data: DataShape, finetune_epochs: int) -> float:
    """Expected seconds of one quality-report sub-network (fine-tuned twice)."""
    return (2 * (finetune_epochs * network_epoch_s(space, data, SUBNET_COST) + FINETUNE_FIXED_S)
            + 2 * EVAL_S)


def references_s(space: SpaceSpec, data: DataShape, finetune_epochs: int) -> float:
    """Expected seconds of the references (maximal network, float32 and int8) and noise floor.

    Each is built, converted and timed; the float32 one is fine-tuned, the
    int8 one fine-tuned and then trained quantization-aware (about one more
    fine-tuning's time); the noise floor times one of them again.
    """
    tune = finetune_epochs * network_epoch_s(space, data) + FINETUNE_FIXED_S
    each = EVAL_S + QUANT_SAMPLE_S + TIME_S
    return 2 * each + 3 * tune + NOISE_REPEATS * TIME_S


def quality_samples(asked: int | None, trials: int, supernet_seconds: float,
                    sample_seconds: float, budget_min: float | None = None) -> int:
    """Sub-networks of the quality report.

    ``asked`` wins when given. By default the report gets at most
    :data:`QUALITY_SHARE` of the supernet's training time, between
    :data:`QUALITY_MIN` and :data:`QUALITY_MAX` sub-networks, and none when
    fewer than :data:`QUALITY_MIN_TRIALS` trials are asked. Under a time
    budget it gets at most :data:`BUDGET_QUALITY_SHARE` of the budget, and
    none when that does not hold :data:`QUALITY_MIN` sub-networks.
    """
    if asked is not None:
        return asked
    if trials < QUALITY_MIN_TRIALS:
        return 0
    allowed = QUALITY_SHARE * supernet_seconds
    if budget_min is not None:
        allowed = min(allowed, BUDGET_QUALITY_SHARE * 60.0 * budget_min)
    fits = int(allowed / max(sample_seconds, 1e-6))
    if budget_min is not None and fits < QUALITY_MIN:
        return 0
    return max(QUALITY_MIN, min(QUALITY_MAX, fits))


def predictor_s(float_samples: int, quant_samples: int, screen_samples: int = 0) -> float:
    """Expected seconds of the accuracy predictor's samples (held-out ones included)."""
    screened = screen_samples + quant_samples if screen_samples else 0
    return (1.2 * (float_samples * FLOAT_SAMPLE_S + quant_samples * QUANT_SAMPLE_S)
            + screened * SCREEN_SAMPLE_S)


def duration(seconds: float) -> str:
    """A duration for people: ``40 s``, ``3.5 min``."""
    if seconds < 90:
        return f"{max(1.0, seconds):.0f} s"
    return f"{seconds / 60:.1f} min"
