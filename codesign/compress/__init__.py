"""Compress a user's own trained model: the third model source.

``codesign search --model PATH`` searches a prune ratio per channel group and a
precision per layer of the user's trained Keras model (read by
:mod:`codesign.models`), with the HyperModel path's channel-group analysis
(:mod:`codesign.hyper.graph`), pruning (:mod:`codesign.hyper.prune`) and genes
(:mod:`codesign.hyper.suggest`). Search side (no TensorFlow):
:mod:`~codesign.compress.settings`, :mod:`~codesign.compress.space`,
:mod:`~codesign.compress.search`, :mod:`~codesign.compress.cli`. Evaluation
child: :mod:`~codesign.compress.source` (the :class:`~codesign.child.source.ModelSource`)
and :mod:`~codesign.compress.inputs` (numpy: the model's input units, the
chance check).
"""
