"""The one interface every framework back-end implements.

Shared code (the CLI, the data pipeline, metrics, timing, the results store) talks to a framework only
through this class, with numpy arrays at the boundary: images are NHWC ``float32``, labels ``int64`` class
indices (or ``float32`` multi-hot rows for multi-label tasks), and outputs are ``float32`` logits.
Every back-end names parameters as PyTorch's ``state_dict`` does, so converted weights travel by name.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from medbench.config import OptimizerConfig, RuntimeConfig

Precision = Literal["fp32", "bf16", "fp16"]
LossName = Literal["cross_entropy", "bce_with_logits"]


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


# ---- the back-end contract -----------------------------------------------------------------------------------
# Every back-end is a sub-package of medbench.frameworks with the same modules, each exporting the functions
# below (the protocols say their signatures; ``tests/frameworks/test_contract.py`` checks every back-end
# against them without importing a framework). ``rt`` is the back-end's own runtime object, made by
# ``runtime.configure``. One :class:`Backend` object calls them for every framework, so shared code never
# imports a back-end module and a back-end holds no object of its own.


class RuntimeModule(Protocol):
    def configure(self, settings: RuntimeConfig, *, framework: str) -> tuple[Any, dict[str, Any]]:
        """Applies threads, device and precision before the framework is imported; returns (rt, applied)."""

    def synchronize(self, rt: Any) -> None:
        """Blocks until queued device work is done, so a clock read after it is honest."""

    def versions(self) -> dict[str, str]:
        """The versions of the framework and its companion libraries."""

    def device_name(self, rt: Any) -> str:
        """A human-readable name of the device in use (CPU model or GPU model)."""

    def gpu_peak(self, rt: Any) -> Callable[[], int | None] | None:
        """A function reading the peak device memory in bytes since start, or None on a CPU."""


class ModelsModule(Protocol):
    def build_model(
        self, rt: Any, family: str, options: dict[str, Any], *, num_classes: int, in_channels: int,
        image_size: int, seed: int,
    ) -> Any:  # fmt: skip
        """A model of a resolved ``family`` (:func:`medbench.frameworks.families.resolve_model`), seeded."""

    def count_params(self, model: Any) -> int:
        """Trainable parameters (BatchNorm running statistics are not counted)."""

    def predict(self, rt: Any, model: Any, images: np.ndarray) -> np.ndarray:
        """Eval-mode float32 logits of an NHWC float32 batch."""


class TrainModule(Protocol):
    def create_trainer(
        self, model: Any, rt: Any, *, optimizer: OptimizerConfig, loss: LossName, label_smoothing: float,
        class_weights: Sequence[float] | None, plan: TrainPlan | None,
    ) -> Trainer:  # fmt: skip
        """A :class:`Trainer` of ``model`` (see :meth:`Backend.create_trainer`)."""


class ConvertModule(Protocol):
    def state_dict(self, model: Any) -> dict[str, np.ndarray]:
        """The model's weights as PyTorch-named, PyTorch-layout numpy arrays."""

    def load_state_dict(self, model: Any, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
        """Copies PyTorch-named, PyTorch-layout arrays into ``model``; raises on missing or misshapen names."""


class WeightsModule(Protocol):
    def save_weights(self, model: Any, path: str | Path) -> Path:
        """Saves in the framework's own format; returns the path written."""

    def load_weights(self, model: Any, path: str | Path) -> None:
        """Loads weights saved by ``save_weights``, checking names and shapes."""


class ProfileModule(Protocol):
    def flops_per_image(self, model: Any, *, image_size: int, in_channels: int) -> int:
        """Forward FLOPs of one image, as :mod:`medbench.frameworks.flops` defines them (2 x MACs)."""

    def step_breakdown(
        self, trainer: Trainer, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None,
        noise: Mapping[str, np.ndarray] | None = None, repeats: int = 3,
    ) -> dict[str, Any]:  # fmt: skip
        """The trainer's step on this batch split into host-to-device, forward, backward and optimizer
        milliseconds (:func:`medbench.frameworks.profiling.breakdown`), measured the framework's own way
        and saying how (``method``). The trainer's weights, optimizer state and random streams are as
        they were before the call: the run's results do not change."""

    def top_operations(
        self, trainer: Trainer, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None,
        noise: Mapping[str, np.ndarray] | None = None, steps: int = 3, top: int = 10,
    ) -> dict[str, Any]:  # fmt: skip
        """The ``top`` costliest operations of ``steps`` training steps by the framework's own profiler
        (:func:`medbench.frameworks.profiling.top_table`); the trainer's state as it was before."""


class LayersModule(Protocol):
    def tag_noise_sites(self, model: Any) -> dict[str, float]:
        """Tells each noise layer its PyTorch path; returns path -> drop probability where it is above 0."""


# ``rate(fn, flops, sync)``: the shared timing of one kernel (warm-up, synchronised clock reads, the fastest
# call), as :func:`medbench.bench.artifacts.kernel_peak` measures every kernel; returns ``flops_per_s`` and
# the figures beside it.
RateFn = Callable[[Callable[[], Any], float, Callable[[], None] | None], dict[str, float]]


class KernelsModule(Protocol):
    def kernel_rates(
        self, *, a: np.ndarray, b: np.ndarray, conv_shape: Mapping[str, int], threads: int | None,
        device: str, rate: RateFn,
    ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """The framework's fastest float32 kernels, each timed by ``rate``: the matrix product ``a @ b``
        and a 3x3 same-padded convolution of ``conv_shape`` (``batch``, ``channels`` in and out,
        ``spatial``), on the CPU and, unless ``device`` is ``cpu``, the GPU. Keys are
        ``{framework}_{kernel}`` and ``{framework}_cuda_{kernel}``; measured on the framework's defaults
        (plain float32), not its configured runtime."""


# module name -> its protocol: what every back-end package provides (``infer.py``'s engine functions are
# named by the engine registry, :mod:`medbench.bench.engines`, instead)
CONTRACT: dict[str, type] = {
    "runtime": RuntimeModule,
    "models": ModelsModule,
    "train": TrainModule,
    "convert": ConvertModule,
    "weights": WeightsModule,
    "profile": ProfileModule,
    "layers": LayersModule,
}
# modules a back-end may provide: where it does, they follow their protocol; where not, the Backend method
# that uses one says so (``kernels``: the best-kernel yardstick of the benchmark, PyTorch's only for now)
OPTIONAL_CONTRACT: dict[str, type] = {"kernels": KernelsModule}


class Backend:
    """One framework behind medbench's interface: the contract's modules of its package, loaded by name.

    ``name`` is the framework (``keras-jax``), ``package`` the sub-package implementing it (``keras``). The
    only state is the runtime made by :meth:`configure`; :func:`medbench.frameworks.get_framework` keeps one
    back-end per framework and process (each framework run has a process of its own).
    """

    def __init__(self, name: str, package: str) -> None:
        self.name = name
        self.package = package
        self._runtime: Any = None
        self.applied: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def module(self, name: str) -> Any:
        """The back-end's contract module ``name`` (imported on first use; importing it may import the
        framework, so configure first)."""
        if name not in CONTRACT and name not in OPTIONAL_CONTRACT and name != "infer":
            raise ValueError(f"{name!r} is not a module of the back-end contract")
        return importlib.import_module(f"medbench.frameworks.{self.package}.{name}")

    def has_module(self, name: str) -> bool:
        """Whether the back-end provides module ``name`` (found without importing it or the framework)."""
        import importlib.util

        return importlib.util.find_spec(f"medbench.frameworks.{self.package}.{name}") is not None

    # ---- runtime --------------------------------------------------------------------------------------
    def configure(self, settings: RuntimeConfig) -> dict[str, Any]:
        """Applies threads, device and precision before any model is built; returns what was applied."""
        self._runtime, self.applied = self.module("runtime").configure(settings, framework=self.name)
        return dict(self.applied)

    @property
    def runtime(self) -> Any:
        """The back-end's runtime object; the defaults, for callers that never configure."""
        if self._runtime is None:
            self.configure(RuntimeConfig())
        return self._runtime

    def synchronize(self) -> None:
        """Blocks until queued device work is done, so a clock read after it is honest."""
        self.module("runtime").synchronize(self.runtime)

    def versions(self) -> dict[str, str]:
        """The versions of the framework and its companion libraries."""
        rt = self.module("runtime")
        self.runtime  # noqa: B018  (configured first: Keras reads its backend when imported)
        return rt.versions()

    def device_name(self) -> str:
        """A human-readable name of the device in use (CPU model or GPU model)."""
        return self.module("runtime").device_name(self.runtime)

    def gpu_peak(self) -> Callable[[], int | None] | None:
        """Reads the peak device memory in bytes (for :func:`medbench.timing.memory_usage`); None on a CPU."""
        return self.module("runtime").gpu_peak(self.runtime)

    # ---- models ---------------------------------------------------------------------------------------
    def build_model(
        self, name: str, *, num_classes: int, in_channels: int, image_size: int, seed: int = 0, **options: Any
    ) -> Any:
        """Builds a registered model (see :mod:`medbench.models`) with freshly initialised weights."""
        from medbench.frameworks.families import check_build_args, resolve_model

        check_build_args(name, num_classes=num_classes, in_channels=in_channels, image_size=image_size)
        family, resolved = resolve_model(name, options)
        rt = self.runtime
        return self.module("models").build_model(
            rt, family, resolved, num_classes=num_classes, in_channels=in_channels, image_size=image_size,
            seed=seed,
        )  # fmt: skip

    def count_params(self, model: Any) -> int:
        """Trainable parameters; BatchNorm running statistics are *not* counted."""
        return self.module("models").count_params(model)

    def predict(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Eval-mode logits for an NHWC float32 batch, as a numpy array."""
        return self.module("models").predict(self.runtime, model, images)

    def flops_per_image(self, model: Any, *, image_size: int, in_channels: int) -> int:
        """Forward FLOPs of one image, as :mod:`medbench.frameworks.flops` defines them (2 x MACs)."""
        return self.module("profile").flops_per_image(model, image_size=image_size, in_channels=in_channels)

    def kernel_rates(
        self, *, a: np.ndarray, b: np.ndarray, conv_shape: Mapping[str, int], threads: int | None = None,
        device: str = "auto", rate: RateFn,
    ) -> dict[str, dict[str, Any]]:  # fmt: skip
        """The framework's fastest float32 kernels (see :class:`KernelsModule`); none (``{}``) from a
        back-end without a ``kernels`` module. Needs no :meth:`configure`: it runs on the defaults."""
        if not self.has_module("kernels"):
            return {}
        return self.module("kernels").kernel_rates(
            a=a, b=b, conv_shape=conv_shape, threads=threads, device=device, rate=rate
        )

    def step_breakdown(self, trainer: Trainer, images: np.ndarray, labels: np.ndarray, **options: Any):
        """Where the trainer's step on this batch goes: host-to-device, forward, backward, optimizer (ms);
        see :class:`ProfileModule`. Leaves the trainer as it was."""
        return self.module("profile").step_breakdown(trainer, images, labels, **options)

    def top_operations(self, trainer: Trainer, images: np.ndarray, labels: np.ndarray, **options: Any):
        """The costliest operations of a few training steps by the framework's own profiler; see
        :class:`ProfileModule`. Leaves the trainer as it was."""
        return self.module("profile").top_operations(trainer, images, labels, **options)

    def noise_layers(self, model: Any) -> dict[str, float]:
        """PyTorch path -> drop probability of every layer of ``model`` that draws noise (``p > 0``), each
        told its path, so a mask handed to ``train_step`` by that name reaches it (shared noise)."""
        return self.module("layers").tag_noise_sites(model)

    # ---- weights --------------------------------------------------------------------------------------
    def load_state_dict(self, model: Any, state: Mapping[str, np.ndarray], *, strict: bool = True) -> None:
        """Copies PyTorch-named, PyTorch-layout arrays into ``model``; raises on missing or misshapen names."""
        self.module("convert").load_state_dict(model, state, strict=strict)

    def state_dict(self, model: Any) -> dict[str, np.ndarray]:
        """The model's weights as PyTorch-named, PyTorch-layout numpy arrays."""
        return self.module("convert").state_dict(model)

    def save_weights(self, model: Any, path: str | Path) -> Path:
        """Saves in this framework's own format; returns the path written."""
        return self.module("weights").save_weights(model, path)

    def load_weights(self, model: Any, path: str | Path) -> None:
        """Loads weights saved by :meth:`save_weights`, checking names and shapes."""
        self.module("weights").load_weights(model, path)

    # ---- training -------------------------------------------------------------------------------------
    def create_trainer(
        self,
        model: Any,
        *,
        optimizer: OptimizerConfig,
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
        return self.module("train").create_trainer(
            model, self.runtime, optimizer=optimizer, loss=loss, label_smoothing=label_smoothing,
            class_weights=class_weights, plan=plan,
        )  # fmt: skip
