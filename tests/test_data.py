"""Data: deterministic splits and the numpy resize that matches TensorFlow's."""

from __future__ import annotations

import numpy as np

from codesign.data import load_dataset, resize_bilinear


def test_split_is_deterministic_disjoint_and_complete() -> None:
    a, b = load_dataset("digits", 0), load_dataset("digits", 0)
    assert np.array_equal(a.x_val, b.x_val) and np.array_equal(a.y_test, b.y_test)
    c = load_dataset("digits", 1)
    assert not np.array_equal(a.y_val, c.y_val)
    total = len(a.y_train) + len(a.y_val) + len(a.y_test)
    assert total == 1797
    flat = {x.tobytes() for x in a.x_train}
    assert sum(x.tobytes() in flat for x in a.x_test) < 5  # digits has a few duplicate images
    assert set(a.y_train) == set(range(10)) and a.num_classes == 10
    assert a.x_train.dtype == np.float32 and 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_resize_matches_tensorflow() -> None:
    import tensorflow as tf

    import codesign  # noqa: F401

    x = load_dataset("digits", 0).x_val[:16]
    for size in (16, 24, 28, 32, 5):
        ours = resize_bilinear(x, size)
        theirs = tf.image.resize(x, (size, size), method="bilinear").numpy()
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-5)
