"""Networks: the weight-sharing supernet, its training, and sub-models.

Everything here imports TensorFlow (tf_keras); only the evaluation child
process and tests import this package.
"""
