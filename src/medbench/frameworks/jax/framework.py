"""The JAX (Flax NNX) back-end behind :class:`medbench.frameworks.base.Framework`.

Importing this module does not import JAX: :meth:`configure` must set ``XLA_FLAGS`` and pin threads before
the XLA backend starts, and the import time is measured apart.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from medbench.frameworks.base import (
    Framework,
    LossName,
    OptimizerSpec,
    RuntimeSettings,
    Trainer,
    TrainPlan,
)
from medbench.frameworks.families import check_build_args, resolve_model


class JaxFramework(Framework):
    name = "jax"

    def __init__(self) -> None:
        self._runtime = None
        self.applied: dict[str, Any] | None = None
        self._forwards: dict[int, tuple[weakref.ref, list, Any]] = {}  # id(model) -> (model, variables, fn)

    # ---- runtime ---------------------------------------------------------------------------------------
    def configure(self, settings: RuntimeSettings) -> dict[str, Any]:
        from medbench.frameworks.jax import runtime

        self._runtime, self.applied = runtime.configure(settings)
        return dict(self.applied)

    @property
    def runtime(self):
        if self._runtime is None:
            self.configure(RuntimeSettings())
        return self._runtime

    def synchronize(self) -> None:
        from medbench.frameworks.jax import runtime

        runtime.synchronize(self.runtime)

    def versions(self) -> dict[str, str]:
        from medbench.frameworks.jax import runtime

        return runtime.versions()

    def device_name(self) -> str:
        from medbench.frameworks.jax import runtime

        return runtime.device_name(self.runtime)

    # ---- models ----------------------------------------------------------------------------------------
    def build_model(
        self, name: str, *, num_classes: int, in_channels: int, image_size: int, seed: int = 0, **options: Any
    ):
        from flax import nnx

        from medbench.frameworks.jax.layers import tag_noise_sites
        from medbench.frameworks.jax.models import build

        check_build_args(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        family, options = resolve_model(name, options)
        rt = self.runtime
        model = build(
            family,
            options,
            num_classes=num_classes,
            in_channels=in_channels,
            image_size=image_size,
            dtype=rt.dtype,
            rngs=nnx.Rngs(params=seed, dropout=seed + 1),
        )
        tag_noise_sites(model)
        return model

    def count_params(self, model) -> int:
        from flax import nnx

        return sum(int(np.prod(v[...].shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))

    def _forward(self, model):
        """The jitted eval-mode forward pass of ``model`` and the variables it reads, built once per model.

        Splitting a module walks its whole graph (about 0.1 s for ResNet-50), too slow for every call. The
        eval view shares the model's ``Variable`` objects, and loading or training assigns into those same
        objects, so reading their current values per call is enough to see new weights.
        """
        import jax
        from flax import nnx

        from medbench.frameworks.jax.train import mode_view

        entry = self._forwards.get(id(model))
        if entry is not None and entry[0]() is model:
            return entry[1], entry[2]
        graphdef, state = nnx.split(mode_view(model, train=False))
        variables = jax.tree.leaves(state, is_leaf=lambda v: isinstance(v, nnx.Variable))
        treedef = jax.tree.structure(nnx.as_pure(state))

        def forward(values, x):
            return nnx.merge(graphdef, jax.tree.unflatten(treedef, values))(x)

        fn = jax.jit(forward)
        self._forwards[id(model)] = (weakref.ref(model), variables, fn)
        return variables, fn

    def predict(self, model, images: np.ndarray) -> np.ndarray:
        variables, fn = self._forward(model)
        return np.asarray(self.runtime.keep(fn([v.get_value() for v in variables], images)))

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
        from medbench.frameworks.jax.train import JaxTrainer

        return JaxTrainer(
            model,
            self.runtime,
            optimizer=optimizer,
            loss=loss,
            label_smoothing=label_smoothing,
            class_weights=class_weights,
            plan=plan,
        )
