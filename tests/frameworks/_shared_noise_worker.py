"""A few training steps of one model in one framework with shared init and shared noise (a test helper).

:func:`main` runs in a fresh worker (``harness.call("tests.frameworks._shared_noise_worker:main", ...)``):
with ``spec`` ``{"model": ..., "options", "size", "batch", "steps", "seed", "lr"}`` it builds the model
with the reference initialisation of ``seed``, draws every step's dropout and stochastic-depth masks from the
numpy stream (:class:`medbench.data.noise.NoiseStream`) and hands them to ``Trainer.train_step(...,
noise=masks)``, exactly as the training loop does, on fixed random batches. It saves to ``out`` the per-step
losses (``losses``) and, for the test's own check that the masks matter, the losses of the same steps with
every stochastic-depth mask replaced by ones (``losses_all_kept``).
"""

from __future__ import annotations

import numpy as np


def main(framework: str, spec: dict, out: str) -> None:
    from medbench.config import OptimizerConfig, RuntimeConfig
    from medbench.data.noise import NoiseStream
    from medbench.frameworks import get_framework
    from medbench.frameworks.families import resolve_model
    from medbench.frameworks.initialization import apply_shared_init
    from medbench.frameworks.noise import check_sites, noise_sites

    model_name, options, size = spec["model"], spec.get("options", {}), int(spec["size"])
    batch, steps, seed, classes = int(spec["batch"]), int(spec["steps"]), int(spec["seed"]), 4
    fw = get_framework(framework)
    fw.configure(RuntimeConfig(threads=1, device="cpu", deterministic=True))
    family, resolved = resolve_model(model_name, options)
    sites = noise_sites(family, resolved, image_size=size)
    stream = NoiseStream(sites, seed)
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((steps, batch, size, size, 3)).astype(np.float32)
    labels = rng.integers(0, classes, (steps, batch)).astype(np.int64)

    def losses(keep_all_depth: bool) -> list[float]:
        model = fw.build_model(model_name, num_classes=classes, in_channels=3, image_size=size, seed=seed,
                               **options)  # fmt: skip
        apply_shared_init(fw, model, model_name, options, seed=seed, image_size=size)
        check_sites(fw.noise_layers(model), sites, framework=framework)
        trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="sgd", lr=spec["lr"], momentum=0.9))
        out = []
        for step in range(steps):
            masks = stream.masks(0, step, batch)
            if keep_all_depth:
                masks = {k: np.ones_like(v) if v.ndim == 4 else v for k, v in masks.items()}
            out.append(float(trainer.train_step(images[step], labels[step], lr=spec["lr"], noise=masks).loss))
        return out

    np.savez(
        out,
        losses=np.array(losses(False)),
        losses_all_kept=np.array(losses(True)),
        depth_sites=np.array(sum(s.kind == "stochastic_depth" for s in sites)),
    )
