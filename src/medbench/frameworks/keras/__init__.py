"""The Keras 3 back-end on each Keras backend (see :mod:`medbench.frameworks.base`).

Models use ``keras.layers``/``keras.ops`` only, and the trainer's steps are each backend's own (see
``steps.py``), so one code runs as three frameworks: ``keras`` (TensorFlow), ``keras-jax`` and
``keras-torch``, each in its own process (``KERAS_BACKEND`` is set by :meth:`KerasFramework.configure`
before Keras is imported). FLOP counting uses TensorFlow where it is installed.
Modules, named as in the other back-ends: ``runtime``, ``layers``, ``models``, ``convert``, ``weights``,
``train``, ``steps``, ``profile``. Importing this package imports neither Keras nor a backend.
"""
