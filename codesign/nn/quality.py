"""How well the supernet's inherited weights rank sub-networks.

Inherited (batch-norm recalibrated) accuracy is only useful for search if it
orders candidates the way their fine-tuned accuracy does; the report measures
that with Kendall's tau over sampled sub-networks, and the narrowest
sub-network's accuracy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from codesign.data import Dataset, resize_bilinear
from codesign.nn.bn import recalibrate_bn
from codesign.nn.finetune import fine_tune, keras_accuracy
from codesign.nn.submodel import build_submodel, inherit_weights
from codesign.space.family import SpaceSpec

BN_IMAGES = 512


def inherited_model(
    space: SpaceSpec, data: Dataset, weights: dict[str, list[np.ndarray]], cand: Any
) -> Any:
    """Build a candidate's float sub-model with inherited weights and recalibrated BN."""
    sub = space.subnet(cand)
    model = build_submodel(space, sub, data.num_classes, data.channels)
    inherit_weights(model, weights)
    recalibrate_bn(model, resize_bilinear(data.x_train[:BN_IMAGES], sub.resolution))
    return model


def supernet_quality(
    space: SpaceSpec,
    data: Dataset,
    weights: dict[str, list[np.ndarray]],
    samples: int = 20,
    finetune_epochs: int = 3,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Measure how well inherited accuracy ranks fine-tuned accuracy.

    Args:
        space: The search space.
        data: The data set (validation split scores, training split tunes).
        weights: Supernet weights.
        samples: Random float sub-networks to compare (at least 2).
        finetune_epochs: Epochs of fine-tuning per sub-network.
        seed: Seed of the sampling.
        progress: Called with ``(done, samples)``.

    Returns:
        ``kendall_tau`` (inherited vs fine-tuned) and its ``p_value``,
        ``noise_ceiling_tau`` (fine-tuned vs the same candidates fine-tuned
        again with another seed: no scorer can rank better than the
        fine-tuned accuracies agree with themselves), ``samples``,
        ``narrowest_accuracy``, ``largest_accuracy`` and the per-candidate
        accuracies.
    """
    rng = np.random.default_rng(seed + 7919)
    rows = []
    for i, cand in enumerate(space.spread_candidates(rng, samples)):
        model = inherited_model(space, data, weights, cand)
        x_val = resize_bilinear(data.x_val, cand.resolution)
        inherited = keras_accuracy(model, x_val, data.y_val)
        x_train = resize_bilinear(data.x_train, cand.resolution)
        tuned = []
        for repeat in range(2):
            if repeat:
                model = inherited_model(space, data, weights, cand)
            fine_tune(model, x_train, data.y_train, finetune_epochs, seed=seed + 1000 * repeat + i)
            tuned.append(keras_accuracy(model, x_val, data.y_val))
        rows.append(
            {
                "candidate": cand.to_dict(),
                "inherited": inherited,
                "fine_tuned": tuned[0],
                "fine_tuned_again": tuned[1],
            }
        )
        if progress is not None:
            progress(i + 1, samples)
    tau, p_value = kendalltau([r["inherited"] for r in rows], [r["fine_tuned"] for r in rows])
    ceiling, _ = kendalltau([r["fine_tuned"] for r in rows], [r["fine_tuned_again"] for r in rows])
    extremes = {}
    for name, cand in (("narrowest", space.min_candidate()), ("largest", space.max_candidate())):
        model = inherited_model(space, data, weights, cand)
        x_val = resize_bilinear(data.x_val, cand.resolution)
        extremes[name] = keras_accuracy(model, x_val, data.y_val)
    return {
        "kendall_tau": float(tau) if np.isfinite(tau) else 0.0,
        "p_value": float(p_value) if np.isfinite(p_value) else 1.0,
        "noise_ceiling_tau": float(ceiling) if np.isfinite(ceiling) else 0.0,
        "samples": samples,
        "finetune_epochs": finetune_epochs,
        "narrowest_accuracy": extremes["narrowest"],
        "largest_accuracy": extremes["largest"],
        "candidates": rows,
    }
