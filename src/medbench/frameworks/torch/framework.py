"""The PyTorch back-end behind :class:`medbench.frameworks.base.Framework`.

Importing this module does not import torch: every method imports what it needs, so that
:meth:`configure` runs before torch is loaded and the import time can be measured apart.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.frameworks.base import Framework, LossName, OptimizerSpec, RuntimeSettings, Trainer, TrainPlan
from medbench.frameworks.families import check_build_args, resolve_model


class TorchFramework(Framework):
    name = "torch"

    def __init__(self) -> None:
        self._runtime = None
        self.applied: dict[str, Any] | None = None

    # ---- runtime ---------------------------------------------------------------------------------------
    def configure(self, settings: RuntimeSettings) -> dict[str, Any]:
        from medbench.frameworks.torch import runtime

        self._runtime, self.applied = runtime.configure(settings)
        return dict(self.applied)

    @property
    def runtime(self):
        if self._runtime is None:  # the defaults, for callers that never configure
            self.configure(RuntimeSettings())
        return self._runtime

    def synchronize(self) -> None:
        from medbench.frameworks.torch import runtime

        runtime.synchronize(self.runtime)

    def versions(self) -> dict[str, str]:
        from medbench.frameworks.torch import runtime

        return runtime.versions()

    def device_name(self) -> str:
        from medbench.frameworks.torch import runtime

        return runtime.device_name(self.runtime)

    # ---- models ----------------------------------------------------------------------------------------
    def build_model(
        self, name: str, *, num_classes: int, in_channels: int, image_size: int, seed: int = 0, **options: Any
    ):
        import torch

        from medbench.frameworks.torch.layers import tag_noise_sites
        from medbench.frameworks.torch.models import build

        check_build_args(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        family, options = resolve_model(name, options)
        rt = self.runtime
        torch.manual_seed(seed)
        model = build(
            family, options, num_classes=num_classes, in_channels=in_channels, image_size=image_size
        )
        tag_noise_sites(model)
        memory_format = torch.channels_last if rt.settings.channels_last else torch.contiguous_format
        return model.to(device=rt.device, memory_format=memory_format)

    def count_params(self, model) -> int:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        import torch

        rt = self.runtime
        model.eval()
        with torch.inference_mode(), rt.autocast():
            logits = model(rt.to_input(images))
        return logits.float().cpu().numpy()

    # ---- training --------------------------------------------------------------------------------------
    def create_trainer(
        self,
        model,
        *,
        optimizer: OptimizerSpec,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
        plan: TrainPlan | None = None,
    ) -> Trainer:
        from medbench.frameworks.torch.train import TorchTrainer

        return TorchTrainer(
            model,
            self.runtime,
            optimizer=optimizer,
            loss=loss,
            label_smoothing=label_smoothing,
            class_weights=class_weights,
            plan=plan,
        )
