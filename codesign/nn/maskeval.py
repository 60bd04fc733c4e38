"""Fast float accuracy of many sub-networks through the masked supernet.

Building a narrow Keras model per candidate costs more than evaluating it.
The masked supernet computes exactly what the narrow sub-model computes (see
:mod:`codesign.nn.supernet`), so a candidate is scored by two traced
functions of fixed shape, reused by every candidate: one gathers batch-norm
statistics on the calibration images (per batch of 256 and averaged, as
:func:`codesign.nn.bn.recalibrate_bn` does for a sub-model), one runs the
validation images with those statistics. No model is built and nothing is
retraced between candidates.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from codesign.nn.fakequant import kernel_variable, rounded_kernels
from codesign.nn.supernet import Supernet
from codesign.space.candidate import Candidate

CALIBRATION_BATCH = 256
EVAL_BATCH = 512


class MaskedEvaluator:
    """Validation accuracy of float sub-networks with recalibrated batch norm.

    Args:
        net: The supernet holding the trained shared weights.
    """

    def __init__(self, net: Supernet) -> None:
        self.net = net
        self.bn_names = [n for n in net.layers if n.endswith("_bn")]
        spec = [tf.TensorSpec((None, None, None, net.channels), tf.float32),
                tf.TensorSpec((None,), tf.float32)]
        self._moments = tf.function(self._moments_fn, input_signature=spec)
        stats_spec = [tf.TensorSpec((None,), tf.float32)] * (2 * len(self.bn_names))
        self._logits = tf.function(self._logits_fn, input_signature=[*spec, *stats_spec])

    def _moments_fn(self, x: tf.Tensor, vec: tf.Tensor) -> list[tf.Tensor]:
        found: dict[str, tuple[tf.Tensor, tf.Tensor]] = {}

        def norm(name: str, h: tf.Tensor) -> tf.Tensor:
            mean, var = tf.nn.moments(h, axes=[0, 1, 2])
            found[name] = (mean, var)
            return self._apply(name, h, mean, var)

        masks, gates = self.net.split_vector(vec)
        self.net.forward(x, masks, gates, training=False, norm=norm)
        zeros = tf.zeros((0,), tf.float32)
        out: list[tf.Tensor] = []
        for name in self.bn_names:  # a gated-off block has no statistics
            mean, var = found.get(name, (zeros, zeros))
            out += [mean, var]
        return out

    def _logits_fn(self, x: tf.Tensor, vec: tf.Tensor, *stats: tf.Tensor) -> tf.Tensor:
        by_name = {n: (stats[2 * i], stats[2 * i + 1]) for i, n in enumerate(self.bn_names)}

        def norm(name: str, h: tf.Tensor) -> tf.Tensor:
            return self._apply(name, h, *by_name[name])

        masks, gates = self.net.split_vector(vec)
        return self.net.forward(x, masks, gates, training=False, norm=norm)

    def _apply(self, name: str, h: tf.Tensor, mean: tf.Tensor, var: tf.Tensor) -> tf.Tensor:
        bn = self.net.layers[name]
        return (h - mean) * tf.math.rsqrt(var + bn.epsilon) * bn.gamma + bn.beta

    def accuracy(self, cand: Candidate, calibration: np.ndarray, x_val: np.ndarray,
                 y_val: np.ndarray) -> float:
        """Validation accuracy of one candidate.

        Args:
            cand: The candidate (its precisions are ignored: this is float).
            calibration: Images for batch-norm statistics, at the candidate's resolution.
            x_val: Validation images at the candidate's resolution.
            y_val: Validation labels.
        """
        return float(np.mean(self.correct(cand, calibration, x_val, y_val)))

    def correct(self, cand: Candidate, calibration: np.ndarray, x_val: np.ndarray,
                y_val: np.ndarray, rounded: bool = False) -> np.ndarray:
        """Whether each validation image is classified right (arguments as :meth:`accuracy`).

        With ``rounded``, each layer's weights are rounded as its precision
        stores them once folded (:mod:`codesign.nn.fakequant`); activations stay float.
        """
        logits = self.logits(cand, calibration, x_val, rounded)
        return np.argmax(logits, axis=1) == y_val

    def logits(self, cand: Candidate, calibration: np.ndarray, x: np.ndarray,
               rounded: bool = False) -> np.ndarray:
        """The sub-network's logits on ``x`` (arguments as :meth:`correct`)."""
        sub = self.net.space.subnet(cand)
        vec = tf.constant(self.net.mask_vector(sub))
        sums: list[np.ndarray] | None = None
        batches = 0
        for start in range(0, len(calibration), CALIBRATION_BATCH):
            batch = calibration[start : start + CALIBRATION_BATCH]
            if len(batch) < 2:
                break
            got = [t.numpy().astype(np.float64) for t in self._moments(tf.constant(batch), vec)]
            sums = got if sums is None else [a + b for a, b in zip(sums, got, strict=True)]
            batches += 1
        if sums is None:
            raise ValueError("at least 2 calibration images are needed")
        means = [(s / batches).astype(np.float32) for s in sums]
        stats = [tf.constant(m) for m in means]
        if not rounded:
            return self._run(x, vec, stats)
        by_bn = {n: (means[2 * i], means[2 * i + 1]) for i, n in enumerate(self.bn_names)}
        kernels = rounded_kernels(self.net, sub, by_bn)
        saved = {n: kernel_variable(self.net, n).numpy() for n in kernels}
        try:
            for n, k in kernels.items():
                kernel_variable(self.net, n).assign(k)
            return self._run(x, vec, stats)
        finally:
            for n, k in saved.items():
                kernel_variable(self.net, n).assign(k)

    def _run(self, x: np.ndarray, vec: tf.Tensor, stats: list[tf.Tensor]) -> np.ndarray:
        out = [self._logits(tf.constant(x[start : start + EVAL_BATCH]), vec, *stats).numpy()
               for start in range(0, len(x), EVAL_BATCH)]
        return np.concatenate(out) if out else np.zeros((0, self.net.num_classes), np.float32)
