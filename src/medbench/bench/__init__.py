"""The inference benchmark behind ``medbench bench``: engines x models x image sizes, measured fairly.

Modules:

- ``engines``: the engine registry (names, the framework each needs, env vars, where its code lives) and the
  tiny interface every engine implements. Framework-free.
- ``plan``: the frozen benchmark config and the interleaved order of measurement cells.
- ``artifacts``: work done once per session, each in its own process: the reference weights, inputs and
  outputs (PyTorch eager fp32), the ONNX exports, the machine's matrix-multiply peak.
- ``cell``: one measurement cell (engine x model x size, all batch sizes) inside a fresh worker process.
- ``session``: the parent side: prepares artifacts, runs the cells through :mod:`medbench.runner`.
- ``summary``, ``scaling``, ``plots``: figures from store rows (framework-free, reusable by reports).
- ``onnx_engines``: ONNX Runtime sessions over the exported models.

The per-framework engine code lives in ``medbench/frameworks/<fw>/infer.py``.
"""
