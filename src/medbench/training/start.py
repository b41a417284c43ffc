"""Where a run starts: initial or pretrained weights, the shared initialisation and noise, the fine-tuning
plan of every epoch."""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.config import RunConfig


def load_initial_weights(config: RunConfig, fw, model) -> dict[str, Any] | None:
    """Pretrained weights (backbone only, a fresh head) or a full ``init_weights`` checkpoint, if any."""
    if config.finetune.pretrained:
        from medbench.frameworks.families import resolve_model
        from medbench.pretrained import load_pretrained, resolve_pretrained

        path = resolve_pretrained(config.model, config.finetune.pretrained, path=config.init_weights)
        family, _ = resolve_model(config.model, config.model_options)
        return load_pretrained(fw, model, path, family=family)
    if config.init_weights is not None:
        from medbench.frameworks.checkpoints import load_torchvision_checkpoint

        load_torchvision_checkpoint(fw, model, config.init_weights)
        return {"path": str(config.init_weights)}
    return None


def shared_start(config: RunConfig, fw, model) -> dict[str, Any]:
    """With ``init = "shared"``, the reference draw of the seed replaces the framework's own (a pretrained
    backbone or ``init_weights`` are loaded over it afterwards, so a fresh head is the shared draw too)."""
    if config.init != "shared":
        return {"init": "native"}
    if config.init_weights is not None and not config.finetune.pretrained:
        return {"init": "init_weights"}  # every tensor comes from the checkpoint: nothing to draw
    from medbench.frameworks.initialization import apply_shared_init

    return apply_shared_init(
        fw, model, config.model, config.model_options, seed=config.seed, image_size=config.data.input_size
    )


def noise_stream(config: RunConfig, fw, model):
    """The shared dropout/stochastic-depth masks of every step (``noise = "shared"``), or ``None``.

    The model's noise layers are checked against the family's sites first, so a mask never goes unused.
    """
    if config.noise != "shared":
        return None
    from medbench.data.noise import NoiseStream
    from medbench.frameworks.families import resolve_model
    from medbench.frameworks.noise import check_sites, noise_sites

    family, options = resolve_model(config.model, config.model_options)
    sites = noise_sites(family, options, image_size=config.data.input_size)
    check_sites(fw.noise_layers(model), sites, framework=fw.name)
    return NoiseStream(sites, config.seed) if sites else None


class FinetunePlanner:
    """The fine-tuning plan of every epoch (:mod:`medbench.finetune`), from the model's parameter names."""

    def __init__(self, config: RunConfig, state: dict[str, Any]):
        from medbench.frameworks.families import resolve_model

        self._config = config.finetune
        self._keys = list(state)
        self._sizes = {k: int(np.size(v)) for k, v in state.items()}
        self._family = resolve_model(config.model, config.model_options)[0]

    def plan(self, epoch: int):
        from medbench.finetune import plan_for_epoch

        return plan_for_epoch(self._family, self._keys, self._config, epoch)

    def changes_at(self, epoch: int) -> bool:
        return epoch > 0 and self.plan(epoch) != self.plan(epoch - 1)

    def describe(self, epoch: int) -> dict[str, Any]:
        from medbench.finetune import describe

        return describe(self.plan(epoch), self._sizes)
