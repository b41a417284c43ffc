"""The Keras 3 back-end, on TensorFlow by default (see :mod:`medbench.frameworks.base`).

Models use ``keras.layers``/``keras.ops`` only, so they also run on Keras' JAX and torch backends
(``KERAS_BACKEND``, read once by :meth:`configure`); training and FLOP counting use TensorFlow.
Modules, named as in the other back-ends: ``runtime``, ``layers``, ``models``, ``convert``, ``weights``,
``train``, ``profile``. Importing this package imports neither Keras nor TensorFlow.
"""

from medbench.frameworks.keras.framework import KerasFramework

FRAMEWORK = KerasFramework()

__all__ = ["FRAMEWORK", "KerasFramework"]
