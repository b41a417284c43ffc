"""The PyTorch back-end (see :mod:`medbench.frameworks.base`).

Modules, named as in the other back-ends: ``runtime`` (threads, device, autocast), ``layers`` and ``models``
(families with torchvision's names), ``convert`` (the naming convention), ``weights`` (safetensors and
``.pth``), ``train`` (the trainer), ``profile`` (FLOPs), and the optional ``kernels`` (the fastest float32
kernels, the benchmark's yardstick). Importing this package does not import torch.
"""
