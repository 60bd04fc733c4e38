"""A user's own trained model, as the tf_keras functional model codesign compresses.

:func:`codesign.models.load.load_user_model` reads a Keras 3 ``.keras`` file,
a tf_keras ``.h5`` file or a tf_keras SavedModel directory and returns a
:class:`codesign.models.load.UserModel`: the tf_keras model with the user's
weights and the facts codesign needs (input shape, classes, output activation,
preprocessing). A Keras 3 model is translated layer by layer into tf_keras
(:mod:`codesign.models.keras3`, with the layer settings adapted by
:mod:`codesign.models.configs`) and the two models' outputs are compared
(:mod:`codesign.models.facts`).

Like every codesign module that uses Keras, these must be imported after
``import codesign`` (which makes TensorFlow use tf_keras); ``keras`` (Keras 3) is
imported only when a Keras 3 model is read.
"""
