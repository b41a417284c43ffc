"""The JAX back-end, with Flax NNX (see :mod:`medbench.frameworks.base`).

Why NNX rather than linen: NNX modules are ordinary Python objects whose attribute paths can mirror
PyTorch's module paths exactly (``model.layer1[0].conv1.kernel`` is ``layer1.0.conv1.weight``), so weight
conversion is a path mapping plus a transpose per kind of layer, and the model code reads like the PyTorch
code beside it. Linen would need ``setup``-named submodules or ``Conv_0``-style auto names and a separate
variables dict. Speed is not traded for this: training and prediction run through ``nnx.split`` once and
``jax.jit`` over the pure state (``nnx.merge`` inside the trace), so the compiled XLA program is the same as
linen's and per-call overhead is a single dispatch (``nnx.jit`` would traverse the module graph on every
call; see ``train.py``).

Modules, named as in the other back-ends: ``runtime``, ``layers``, ``models``, ``convert``, ``weights``,
``train``, ``profile``. Importing this package does not import JAX.
"""
