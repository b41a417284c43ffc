"""Builds models in one framework with the shared initialisation and saves their state dicts (a test helper).

:func:`main` runs in a fresh worker (``harness.call("tests.frameworks._shared_start_worker:main", ...)``) and
writes to ``out``, for every case of ``CASES``, ``{case}/{key}`` arrays of the starting state dict (PyTorch
names and layout, read back through the framework's own converter) and ``{case}/noise_sites`` (the model's
noise layers, as JSON).
"""

from __future__ import annotations

import json

import numpy as np

# (case id, model, options, image size, seed)
CASES = (
    ("simple_cnn", "simple_cnn", {}, 28, 3),
    ("resnet18", "resnet18", {}, 28, 3),
    ("resnet18_mlp_zero", "resnet18", {"head": "mlp", "zero_init_residual": True}, 28, 1),
)


def main(framework: str, out: str) -> None:
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework
    from medbench.frameworks.initialization import apply_shared_init

    fw = get_framework(framework)
    fw.configure(RuntimeConfig(threads=1, device="cpu"))
    arrays = {}
    for case, name, options, size, seed in CASES:
        model = fw.build_model(name, num_classes=3, in_channels=1, image_size=size, seed=seed, **options)
        apply_shared_init(fw, model, name, options, seed=seed, image_size=size)
        for key, value in fw.state_dict(model).items():
            arrays[f"{case}/{key}"] = np.asarray(value)
        arrays[f"{case}/noise_sites"] = np.array(json.dumps(fw.noise_layers(model), sort_keys=True))
    np.savez(out, **arrays)
