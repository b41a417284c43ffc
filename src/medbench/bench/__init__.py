"""The inference benchmark behind ``medbench bench``: engines x models x image sizes, measured fairly.

Modules:

- ``engines``: the engine registry (names, the framework each needs, env vars, where its code lives) and the
  tiny interface every engine implements. Framework-free.
- ``plan``: the frozen benchmark config and the interleaved order of measurement cells.
- ``artifacts``: work done once per session, each in its own process: the reference weights, inputs and
  outputs (PyTorch eager fp32), the ONNX exports, the best fp32 kernel of the installed frameworks.
- ``peak``: the theoretical fp32 FMA peak, its clock and lanes measured by a C kernel (``native/peak.c``),
  and :func:`~medbench.bench.peak.effective_flops`, what both ceilings divide. Framework-free.
- ``cell``: one measurement cell (engine x model x size, all batch sizes) inside a fresh worker process.
- ``session``: the parent side: prepares artifacts, runs the cells through :mod:`medbench.orchestration.runner`.
- ``summary``, ``scaling``, ``plots``: figures from store rows (framework-free, reusable by reports).
- ``onnx_engines``: ONNX Runtime sessions over the exported models.

The per-framework engine code lives in ``medbench/frameworks/<fw>/infer.py``.
"""
