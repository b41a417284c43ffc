"""Typed, validated, frozen run configuration.

A run is fully described by a :class:`RunConfig`; it is validated when read (with messages that name the
field and the fix), frozen, and stored with its hash beside every result, so any number can be traced back
to exactly what produced it. The defaults are the official MedMNIST baseline recipe: Adam lr 1e-3, batch 128,
100 epochs, lr x0.1 at 50% and 75% of the epochs, mean = std = 0.5, no augmentation, best checkpoint by
validation AUC.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medbench.errors import ConfigError
from medbench.jsonable import canonical_json


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptimizerConfig(_Frozen):
    """An optimizer in framework-neutral terms; every back-end's trainer takes this one type. The trainer
    may change the learning rate per step (the schedule); ``lr`` is the base rate."""

    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD only
    nesterov: bool = False
    # decoupled for AdamW, L2 added to the gradient for SGD and Adam (as torch does)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(1e-8, gt=0)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerConfig:
        if self.nesterov and (self.name != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs SGD with momentum > 0 (as in PyTorch); set nesterov = false")
        return self


class ScheduleConfig(_Frozen):
    kind: Literal["step", "cosine", "constant"] = "step"
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of the run's steps (epochs 50 and 75 of 100)
    gamma: float = Field(0.1, gt=0)
    warmup_epochs: float = Field(0.0, ge=0)
    min_lr: float = Field(0.0, ge=0)

    @field_validator("milestones")
    @classmethod
    def _fractions(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(not 0 < m < 1 for m in value) or list(value) != sorted(value):
            raise ValueError(
                "milestones are increasing fractions of the run between 0 and 1, e.g. [0.5, 0.75]"
            )
        return value


class AugmentConfig(_Frozen):
    """Training-time augmentation, applied by the shared numpy pipeline (identical in every framework)."""

    hflip: bool = False
    vflip: bool = False
    rotate_degrees: float = Field(0.0, ge=0, le=180)
    crop_padding: int = Field(0, ge=0)

    @property
    def enabled(self) -> bool:
        return self.hflip or self.vflip or self.rotate_degrees > 0 or self.crop_padding > 0


class DataConfig(_Frozen):
    dataset: str = "pathmnist"
    size: int = 28
    data_file: Path | None = None  # a file in the official layout, used instead of the official download
    root: Path | None = None
    # official: mean = std = 0.5; dataset: train-split statistics; imagenet: torchvision's ImageNet mean/std
    # (RGB: set to_rgb for grey datasets); pretrained: what the pretrained weights' transforms use
    # (ImageNet's for most, mean = std = 0.5 for EfficientNetV2-L)
    normalize: Literal["official", "dataset", "imagenet", "pretrained", "none"] = "official"
    resize_to: int | None = None  # upsampled protocols, e.g. 28 -> 224
    resize_method: Literal["nearest", "bilinear"] = "nearest"
    to_rgb: bool = False
    augment: AugmentConfig = AugmentConfig()

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str) -> str:
        from medbench.data.registry import get_dataset

        return get_dataset(value).flag

    @field_validator("size")
    @classmethod
    def _known_size(cls, value: int) -> int:
        from medbench.data.registry import check_size

        return check_size(value)

    @property
    def input_size(self) -> int:
        """The side length the model sees."""
        return self.resize_to or self.size


class RecipeConfig(_Frozen):
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=1)
    eval_batch_size: int = Field(256, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weights: None | Literal["balanced"] | tuple[float, ...] = None
    # shuffle: each image once per epoch; balanced: as many draws, with replacement, each class equally
    # likely (torch's WeightedRandomSampler with 1 / class count weights)
    sampler: Literal["shuffle", "balanced"] = "shuffle"
    early_stopping_patience: int | None = Field(None, ge=1)  # epochs without a better val AUC
    select_metric: Literal["val_auc", "val_acc", "val_loss"] = "val_auc"
    max_steps_per_epoch: int | None = Field(None, ge=1)  # for smoke runs and benchmarks
    # the final evaluation also scores the train split (overfitting at a glance); off for short CPU studies,
    # where scoring every training image costs more than the training itself
    evaluate_train: bool = True
    # the per-step training losses of the first N steps are stored with the run (metrics "trajectory"), to
    # measure how long frameworks agree step by step (medbench.report.trajectory)
    trajectory_steps: int = Field(200, ge=0)


class FinetuneConfig(_Frozen):
    """Which parts of the network train, and how (see :mod:`medbench.finetune`).

    The backbone is split into stages (ResNet: stem, layer1..layer4; EfficientNetV2: features.0..N;
    simple_cnn: blocks.0..N); the head always trains. The defaults train everything (no fine-tuning plan).
    """

    # start from torchvision's ImageNet weights (downloaded once into the cache, or `init_weights`); the
    # head is replaced by a fresh one for this dataset's classes
    pretrained: Literal["imagenet"] | None = None
    trainable: Literal["all", "head", "top"] = "all"  # head: linear probe; top: the top `top_stages` stages
    top_stages: int = Field(1, ge=1)
    backbone_lr_scale: float = Field(1.0, gt=0)  # discriminative learning rate: backbone lr = lr x this
    unfreeze_every: int | None = Field(None, ge=1)  # gradual unfreezing: one more stage every N epochs
    freeze_bn: bool = False  # every BatchNorm in inference mode with fixed affine parameters

    @property
    def is_default(self) -> bool:
        return self == FinetuneConfig()


class RuntimeConfig(_Frozen):
    """How a framework runs: the same fields for every framework, recorded with every result; every
    back-end's ``runtime.configure`` takes this one type."""

    threads: int | None = Field(None, ge=1)  # intra-op threads; None = the framework's default
    interop_threads: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "gpu"] = "auto"  # "auto" = the one GPU when present, else CPU
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # compute dtype; parameters stay fp32
    channels_last: bool = True  # PyTorch's memory format; ignored elsewhere (NHWC already)
    # deterministic kernels where the framework has them (torch.use_deterministic_algorithms, TF op
    # determinism, XLA's deterministic ops): slower, and bit-reproducible runs on one machine
    deterministic: bool = False
    # training compilation, each framework's own (torch.compile; Keras' jit_compile: XLA on TensorFlow, jax.jit
    # on JAX, torch.compile on torch); None = the framework's out-of-the-box behaviour (JAX: always jitted).
    # What each value runs: medbench.frameworks.settings.COMPILE; what was applied is stored with the run.
    compile: bool | None = None
    # per-framework performance settings from the catalog (medbench.frameworks.settings.SETTINGS), e.g.
    # {"onednn": false} for torch or {"xla_flags": "--xla_cpu_use_onednn=true"} for JAX
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("settings")
    @classmethod
    def _documented_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        from medbench.frameworks.settings import check_settings

        try:
            return check_settings(value)
        except ConfigError as err:  # a ValueError for pydantic, so parse_config names the field
            raise ValueError(str(err).rstrip(".")) from None


class RunConfig(_Frozen):
    # keras is Keras 3 on TensorFlow; keras-jax and keras-torch the same Keras code on its other backends
    framework: Literal["torch", "jax", "keras", "keras-jax", "keras-torch"] = "torch"
    model: str = "simple_cnn"
    model_options: dict[str, Any] = Field(default_factory=dict)
    # Start from these weights (a PyTorch-named state dict: .safetensors or a torchvision .pth) instead of a
    # fresh initialisation, in any framework, through the converters.
    init_weights: Path | None = None
    data: DataConfig = DataConfig()
    recipe: RecipeConfig = RecipeConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    runtime: RuntimeConfig = RuntimeConfig()
    seed: int = 0
    # shared: every framework starts from the same weights, drawn in numpy by the reference (PyTorch)
    # initialisation from `seed` (medbench.frameworks.initialization); native: each framework's own draw
    init: Literal["shared", "native"] = "shared"
    # shared: dropout and stochastic-depth masks drawn in numpy per (seed, epoch, step) and used by every
    # framework (medbench.data.noise); native: each framework's own RNG
    noise: Literal["shared", "native"] = "shared"
    tags: dict[str, str] = Field(default_factory=dict)  # e.g. the experiment variant; stored and hashed

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from medbench.models import get_model_spec

        return get_model_spec(value).name

    @model_validator(mode="after")
    def _precision_fits_the_framework(self) -> RunConfig:
        if self.runtime.precision == "fp16" and self.framework in ("keras-jax", "keras-torch"):
            raise ValueError(
                f"runtime.precision='fp16' needs loss scaling, which {self.framework} does not train with; "
                "use bf16, or fp16 with the keras (TensorFlow) framework"
            )
        return self

    @model_validator(mode="after")
    def _runtime_fits_the_framework(self) -> RunConfig:
        from medbench.frameworks.settings import check_compile, check_settings

        try:
            check_settings(self.runtime.settings, self.framework)
            check_compile(self.runtime.compile, self.framework)
        except ConfigError as err:
            raise ValueError(str(err).rstrip(".")) from None
        return self

    @model_validator(mode="after")
    def _class_weights_match(self) -> RunConfig:
        weights = self.recipe.class_weights
        if isinstance(weights, tuple):
            from medbench.data.registry import get_dataset

            n = get_dataset(self.data.dataset).n_classes
            if len(weights) != n:
                raise ValueError(
                    f"recipe.class_weights has {len(weights)} values but {self.data.dataset} has {n} classes"
                )
        return self

    @model_validator(mode="after")
    def _data_options_fit_the_dataset(self) -> RunConfig:
        """Mistakes the pipeline would only meet in the worker, caught when the config is read."""
        from medbench.data.registry import Task, get_dataset

        info = get_dataset(self.data.dataset)
        if self.data.normalize == "pretrained" and not self.finetune.pretrained:
            raise ValueError(
                "data.normalize='pretrained' follows the pretrained weights, but finetune.pretrained is not "
                "set; set finetune.pretrained='imagenet' or choose another normalisation"
            )
        rgb_only = self.data.normalize in ("imagenet", "pretrained") or self.finetune.pretrained
        if rgb_only and info.n_channels == 1 and not self.data.to_rgb:
            raise ValueError(
                f"ImageNet weights and normalisation need RGB input but {info.flag} is grey; "
                "set data.to_rgb=true"
            )
        if self.recipe.sampler == "balanced" and info.task.value == Task.MULTI_LABEL.value:
            raise ValueError(
                f"recipe.sampler='balanced' is not defined for the multi-label {info.flag}; use "
                "recipe.sampler='shuffle' (and class weights) instead"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        """sha256 of the canonical JSON: equal configs, equal hashes, whatever the key order they came in."""
        return config_hash(self.to_dict())


# Fields added after results were first stored; while they hold the value that reproduces what runs did
# before the field existed, they stay out of the hash, so those runs keep their hashes (and `medbench run`
# still recognises them as finished). For most that is the default; `init` and `noise` changed behaviour
# with their new default ("shared"), so only "native" (the old behaviour) is left out, and a shared run
# hashes differently from every run stored before.
_LATE_DEFAULTS: dict[tuple[str, ...], Any] = {
    ("finetune",): FinetuneConfig().model_dump(mode="json"),
    ("recipe", "sampler"): "shuffle",
    ("recipe", "evaluate_train"): True,
    ("recipe", "trajectory_steps"): 200,
    ("runtime", "deterministic"): False,
    ("runtime", "compile"): None,
    ("runtime", "settings"): {},
    ("init",): "native",
    ("noise",): "native",
}
# Late fields whose default is *not* what runs stored before them did: a stored config without them (a run
# folder's checkpoint.json, a store row) is read with these values (see `stored_config`).
_PREDATING: dict[str, Any] = {"init": "native", "noise": "native"}


def without_late_defaults(config: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-plain ``config`` without the late fields that hold their defaults: what
    :func:`config_hash` hashes."""
    out = json.loads(json.dumps(config))
    for (*parents, leaf), default in _LATE_DEFAULTS.items():
        node = out
        for key in parents:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict) and node.get(leaf) == default:
            node.pop(leaf, None)
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``config``; key order and tuple-vs-list do not matter.

    Validate and resolve the config first: ``1`` and ``1.0`` are different JSON and give different hashes.
    """
    plain = without_late_defaults(json.loads(canonical_json(config)))
    return hashlib.sha256(canonical_json(plain).encode("utf-8")).hexdigest()


def stored_config(data: Mapping[str, Any]) -> RunConfig:
    """Parses a config that was *stored* by a run (``checkpoint.json``), filling in the late fields it
    predates with what that run actually did (``init = noise = "native"``), not with today's defaults."""
    return parse_config({**_PREDATING, **data})


def parse_config(data: dict[str, Any], model: type[BaseModel] = RunConfig) -> Any:
    """Validates a config dict; a mistake becomes a ConfigError naming each bad field and what it accepts."""
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = []
        for e in err.errors()[:5]:
            where = ".".join(str(p) for p in e["loc"]) or "config"
            problems.append(
                f"{where}: {e['msg']}"
                + (f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else "")
            )
        raise ConfigError(
            "Invalid configuration: " + "; ".join(problems) + ".", "Fix the field(s) named above."
        ) from None


MAX_DEPTH = 16  # config fields are at most a few levels deep; more is a typo (and would overflow the stack)


def set_dotted(config: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """Returns a copy of ``config`` with ``a.b.c = value`` set (used by CLI overrides such as ``recipe.epochs=3``)."""
    parts = dotted.split(".")
    if len(parts) > MAX_DEPTH or not all(p.strip() for p in parts):
        shown = dotted if len(dotted) <= 60 else dotted[:57] + "..."
        problem = f"is {len(parts)} levels deep" if len(parts) > MAX_DEPTH else "has an empty part"
        raise ConfigError(
            f"The field name {shown!r} {problem}.",
            "Name a config field with a few dot-separated parts, e.g. recipe.optimizer.lr.",
        )
    out = json.loads(json.dumps(config, default=str))
    node = out
    *parents, leaf = parts
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"Cannot set {dotted!r}: {key!r} is not a section.", "Check the field name.")
    node[leaf] = value
    return out
