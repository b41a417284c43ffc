"""The one interface every framework back-end implements.

Shared code (the CLI, the data pipeline, metrics, timing, the results store) talks to a framework only
through this class, with numpy arrays at the boundary: images are NHWC ``float32``, labels ``int64`` class
indices (or ``float32`` multi-hot rows for multi-label tasks), and outputs are ``float32`` logits.
Every back-end names parameters as PyTorch's ``state_dict`` does, so converted weights travel by name.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

Precision = Literal["fp32", "bf16", "fp16"]
LossName = Literal["cross_entropy", "bce_with_logits"]


@dataclass(frozen=True)
class RuntimeSettings:
    """How a framework should run: the same fields for every framework, recorded with every result."""

    threads: int | None = None  # intra-op threads; None = the framework's default
    interop_threads: int | None = None
    device: Literal["auto", "cpu", "gpu"] = "auto"  # "auto" = the one GPU when present, else CPU
    precision: Precision = "fp32"  # compute dtype for mixed precision; parameters stay fp32
    channels_last: bool = True  # PyTorch memory format; ignored elsewhere (NHWC already)
    deterministic: bool = False


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer in framework-neutral terms. ``lr`` may be changed per step by the caller."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    nesterov: bool = False
    weight_decay: float = 0.0  # decoupled for AdamW, L2 added to the gradient for SGD and Adam (as torch)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8


@dataclass(frozen=True)
class ParamGroup:
    """Parameters trained together at ``lr x lr_scale``: a ``torch.optim`` parameter group.

    ``params`` are PyTorch ``state_dict`` names of trainable tensors (weights and biases, BatchNorm's
    ``weight``/``bias``; never running statistics). A group is identified by ``name``: a group of the same
    name always holds the same parameters at the same scale, so its optimizer state carries over when the
    plan changes, while a new group starts with fresh state (PyTorch's ``add_param_group``: zero moments and
    its own Adam step count).
    """

    name: str
    params: tuple[str, ...]
    lr_scale: float = 1.0


@dataclass(frozen=True)
class TrainPlan:
    """Which parameters train, at which learning-rate scale, and which BatchNorm layers stay frozen.

    * A parameter in no group is frozen: never updated, no weight decay, no optimizer state.
    * ``lr_scale`` multiplies the step's learning rate (discriminative learning rates): the update equals
      PyTorch's with that group's ``lr = lr x lr_scale``, for SGD, Adam and AdamW alike.
    * ``frozen_norm`` are module paths (``layer1.0.bn1``) of BatchNorm layers that run in inference mode
      during training: running statistics are used and not updated (Keras' rule for a frozen BatchNorm).
      Their ``weight``/``bias`` train only if they are in a group.
    """

    groups: tuple[ParamGroup, ...]
    frozen_norm: tuple[str, ...] = ()

    @property
    def trainable(self) -> dict[str, float]:
        """Parameter name -> learning-rate scale, for every parameter that trains."""
        return {name: g.lr_scale for g in self.groups for name in g.params}


@dataclass
class StepResult:
    loss: float
    extras: dict[str, float] = field(default_factory=dict)


class Trainer(abc.ABC):
    """Holds a model and its optimizer state, and runs one step at a time."""

    @abc.abstractmethod
    def train_step(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        *,
        lr: float | None = None,
        noise: Mapping[str, np.ndarray] | None = None,
    ) -> StepResult:
        """One optimisation step on one batch; returns the mean loss of that batch (before the update).

        ``noise`` (shared noise, :mod:`medbench.frameworks.noise`): the step's dropout and stochastic-depth
        masks by site name, used instead of the framework's RNG; ``None`` keeps the framework's own draw.
        """

    @abc.abstractmethod
    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        """Logits in evaluation mode (BatchNorm running statistics, no dropout)."""

    @property
    @abc.abstractmethod
    def model(self) -> Any:
        """The framework's model object, with the trained weights."""

    def set_plan(self, plan: TrainPlan) -> None:
        """Switches to another :class:`TrainPlan` between steps (gradual unfreezing).

        Groups whose name is in both plans keep their optimizer state; new groups start fresh.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot change its training plan")

    def save_state(self, path: str | Path) -> Path:
        """Saves weights *and* optimizer state (for ``--resume``) in the framework's own format."""
        raise NotImplementedError(f"{type(self).__name__} cannot save its training state yet")

    def load_state(self, path: str | Path) -> None:
        """Restores what :meth:`save_state` wrote, so training continues as if it had not stopped."""
        raise NotImplementedError(f"{type(self).__name__} cannot load a training state yet")


class Framework(abc.ABC):
    """One deep-learning framework behind medbench's interface."""

    name: ClassVar[str]

    # ---- runtime --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def configure(self, settings: RuntimeSettings) -> dict[str, Any]:
        """Applies threads, device and precision before any model is built; returns what was applied."""

    @abc.abstractmethod
    def synchronize(self) -> None:
        """Blocks until queued device work is done, so a clock read after it is honest."""

    @abc.abstractmethod
    def versions(self) -> dict[str, str]:
        """The versions of the framework and its companion libraries."""

    @abc.abstractmethod
    def device_name(self) -> str:
        """A human-readable name of the device in use (CPU model or GPU model)."""

    # ---- models ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    def build_model(
        self, name: str, *, num_classes: int, in_channels: int, image_size: int, seed: int = 0, **options: Any
    ) -> Any:
        """Builds a registered model (see :mod:`medbench.models`) with freshly initialised weights."""

    @abc.abstractmethod
    def count_params(self, model: Any) -> int:
        """Trainable parameters plus BatchNorm running statistics are *not* counted: trainable only."""

    @abc.abstractmethod
    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Eval-mode logits for an NHWC float32 batch, as a numpy array."""

    # Every back-end has the same module names (profile, convert, weights), so the methods below delegate to
    # ``medbench.frameworks.<name>.<module>`` here, once, instead of in each back-end; the import stays lazy.
    @property
    def package(self) -> str:
        """The sub-package of ``medbench.frameworks`` holding this back-end's modules (Keras: one for three)."""
        return self.name

    def _backend_module(self, module: str):
        return importlib.import_module(f"medbench.frameworks.{self.package}.{module}")

    def flops_per_image(self, model: Any, *, image_size: int, in_channels: int) -> int:
        """Forward FLOPs of one image, as :mod:`medbench.frameworks.flops` defines them (2 x MACs)."""
        return self._backend_module("profile").flops_per_image(
            model, image_size=image_size, in_channels=in_channels
        )

    def noise_layers(self, model: Any) -> dict[str, float]:
        """PyTorch path -> drop probability of every layer of ``model`` that draws noise (``p > 0``), each
        told its path, so a mask handed to ``train_step`` by that name reaches it (shared noise)."""
        return self._backend_module("layers").tag_noise_sites(model)

    # ---- weights --------------------------------------------------------------------------------------
    def load_state_dict(self, model: Any, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
        """Copies PyTorch-named, PyTorch-layout arrays into ``model``; raises on missing or misshapen names."""
        self._backend_module("convert").load_state_dict(model, state, strict=strict)

    def state_dict(self, model: Any) -> dict[str, np.ndarray]:
        """The model's weights as PyTorch-named, PyTorch-layout numpy arrays."""
        return self._backend_module("convert").state_dict(model)

    def save_weights(self, model: Any, path: str | Path) -> Path:
        """Saves in this framework's own format; returns the path written."""
        return self._backend_module("weights").save_weights(model, path)

    def load_weights(self, model: Any, path: str | Path) -> None:
        """Loads weights saved by :meth:`save_weights`, checking names and shapes."""
        self._backend_module("weights").load_weights(model, path)

    # ---- training -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_trainer(
        self,
        model: Any,
        *,
        optimizer: OptimizerSpec,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights: Sequence[float] | None = None,
        plan: TrainPlan | None = None,
    ) -> Trainer:
        """A trainer for ``model``; the caller owns the schedule and passes ``lr`` per step.

        ``class_weights`` weight each sample's cross-entropy by its class; the mean is then taken over the
        weights (as ``torch.nn.CrossEntropyLoss(weight=...)`` with mean reduction does).
        ``plan`` (fine-tuning) says which parameters train and at which learning-rate scale; ``None``
        trains every parameter at the step's learning rate, every BatchNorm in training mode.
        """
