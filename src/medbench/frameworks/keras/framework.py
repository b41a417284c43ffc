"""The Keras 3 back-end behind :class:`medbench.frameworks.base.Framework`.

Importing this module imports neither Keras nor TensorFlow: :meth:`configure` sets ``KERAS_BACKEND``
(TensorFlow by default) and TensorFlow's thread pools before either starts.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from medbench.frameworks.base import Framework, LossName, OptimizerSpec, RuntimeSettings, Trainer, TrainPlan
from medbench.frameworks.families import check_build_args, resolve_model


class KerasFramework(Framework):
    name = "keras"

    def __init__(self) -> None:
        self._runtime = None
        self.applied: dict[str, Any] | None = None
        self._predict_fns: dict[int, tuple[weakref.ref, Any]] = {}

    # ---- runtime ---------------------------------------------------------------------------------------
    def configure(self, settings: RuntimeSettings) -> dict[str, Any]:
        from medbench.frameworks.keras import runtime

        self._runtime, self.applied = runtime.configure(settings)
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
        """A compiled eval-mode forward pass, kept per model (``tf.function`` on TensorFlow)."""
        entry = self._predict_fns.get(id(model))
        if entry is not None and entry[0]() is model:
            return entry[1]
        if self.runtime.backend == "tensorflow":
            import tensorflow as tf

            fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        else:
            fn = lambda x: model(x, training=False)  # noqa: E731
        self._predict_fns[id(model)] = (weakref.ref(model), fn)
        return fn

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        import keras

        return np.asarray(keras.ops.convert_to_numpy(self._forward(model)(images)), dtype=np.float32)

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
