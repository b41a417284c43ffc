"""The Keras 3 back-end behind :class:`medbench.frameworks.base.Framework`.

One class, one instance per Keras backend (``keras`` on TensorFlow, ``keras-jax``, ``keras-torch``): the
framework name fixes the backend. Importing this module imports neither Keras nor a backend:
:meth:`configure` sets ``KERAS_BACKEND`` and the backend's thread pools before either starts.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medbench.frameworks.base import Framework, LossName, OptimizerSpec, RuntimeSettings, Trainer, TrainPlan
from medbench.frameworks.families import check_build_args, resolve_model


class KerasFramework(Framework):
    name = "keras"
    package = "keras"  # every Keras backend shares the modules of medbench.frameworks.keras

    def __init__(self, name: str = "keras") -> None:
        from medbench.frameworks.keras.runtime import BACKEND_OF_FRAMEWORK

        self.name = name
        self.backend = BACKEND_OF_FRAMEWORK[name]
        self._runtime = None
        self.applied: dict[str, Any] | None = None

    # ---- runtime ---------------------------------------------------------------------------------------
    def configure(self, settings: RuntimeSettings) -> dict[str, Any]:
        from medbench.frameworks.keras import runtime

        self._runtime, self.applied = runtime.configure(settings, self.backend)
        return dict(self.applied)

    @property
    def runtime(self):
        if self._runtime is None:
            self.configure(RuntimeSettings())
        return self._runtime

    def synchronize(self) -> None:
        from medbench.frameworks.keras import runtime

        runtime.synchronize(self.runtime)

    def versions(self) -> dict[str, str]:
        from medbench.frameworks.keras import runtime

        self.runtime  # noqa: B018  (sets KERAS_BACKEND before keras is imported)
        return runtime.versions()

    def device_name(self) -> str:
        from medbench.frameworks.keras import runtime

        return runtime.device_name(self.runtime)

    # ---- models ----------------------------------------------------------------------------------------
    def build_model(
        self, name: str, *, num_classes: int, in_channels: int, image_size: int, seed: int = 0, **options: Any
    ):
        check_build_args(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        family, options = resolve_model(name, options)
        self.runtime  # noqa: B018  (configures before keras is imported)
        import keras

        from medbench.frameworks.keras.models import build

        keras.utils.set_random_seed(seed)
        return build(family, options, num_classes=num_classes, in_channels=in_channels, image_size=image_size)

    def count_params(self, model) -> int:
        return int(sum(np.prod(v.shape) for v in model.trainable_weights))

    def _forward(self, model):
        """The model's compiled eval-mode forward pass (``tf.function``, ``jax.jit``; torch: eager)."""
        from medbench.frameworks.keras.steps import make_eval

        return make_eval(self.runtime.backend, model)

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._forward(model)(images), dtype=np.float32)

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
        from medbench.frameworks.keras.train import KerasTrainer

        return KerasTrainer(
            model,
            self.runtime,
            optimizer=optimizer,
            loss=loss,
            label_smoothing=label_smoothing,
            class_weights=class_weights,
            plan=plan,
        )
