"""The published ImageNet checkpoints medbench's models can start from: torchvision's files and their facts.

The checkpoints are torchvision's own (``IMAGENET1K_V1``, from ``download.pytorch.org/models``). torch hub's
rule for their names holds here too: the hex digits after the last ``-`` start the file's SHA-256.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from medbench.data.imagenet import IMAGENET_MEAN, IMAGENET_STD
from medbench.errors import ConfigError, did_you_mean

OFFICIAL_BASE_URL = "https://download.pytorch.org/models"
# torch hub's HASH_REGEX, anchored to the last "-": at least 6 hex digits, so "resnet18-final.pth" carries none
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.[^-]*$")
WEIGHTS_OPTION = "`--weights PATH` (config: init_weights)"


@dataclass(frozen=True)
class PretrainedWeights:
    """One published checkpoint and what torchvision says about it (``Weights.meta`` and its transforms)."""

    model: str  # medbench's model name
    torchvision: str  # the torchvision enum member the file belongs to
    url: str
    acc1: float  # ImageNet-1K top-1 accuracy (%), torchvision's figure
    acc5: float
    num_params: int
    file_mb: float  # torchvision's _file_size / _weight_size
    resize_size: int  # the evaluation transform: resize the short side, then centre-crop
    crop_size: int
    interpolation: Literal["bilinear", "bicubic"]
    # medbench's data.normalize that reproduces the transform's mean/std: "imagenet" or "official" (0.5)
    normalize: Literal["imagenet", "official"] = "imagenet"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        prefix = hash_prefix(self.filename)
        assert prefix is not None, self.filename  # every registry file name carries one
        return prefix

    @property
    def mean(self) -> tuple[float, ...]:
        return IMAGENET_MEAN if self.normalize == "imagenet" else (0.5, 0.5, 0.5)

    @property
    def std(self) -> tuple[float, ...]:
        return IMAGENET_STD if self.normalize == "imagenet" else (0.5, 0.5, 0.5)


def _torchvision(model: str, enum: str, file: str, **meta: Any) -> PretrainedWeights:
    return PretrainedWeights(model, f"{enum}.IMAGENET1K_V1", f"{OFFICIAL_BASE_URL}/{file}", **meta)


# From torchvision's models/resnet.py and models/efficientnet.py (``IMAGENET1K_V1`` of each). ResNet-50's
# torchvision default is V2 (80.858 %, another recipe); V1 is the classic one and what pretrained=True gave.
# fmt: off
_REGISTRY: dict[str, dict[str, PretrainedWeights]] = {
    "imagenet": {
        w.model: w
        for w in (
            _torchvision(
                "resnet18", "ResNet18_Weights", "resnet18-f37072fd.pth",
                acc1=69.758, acc5=89.078, num_params=11_689_512, file_mb=44.661,
                resize_size=256, crop_size=224, interpolation="bilinear",
            ),
            _torchvision(
                "resnet50", "ResNet50_Weights", "resnet50-0676ba61.pth",
                acc1=76.130, acc5=92.862, num_params=25_557_032, file_mb=97.781,
                resize_size=256, crop_size=224, interpolation="bilinear",
            ),
            _torchvision(
                "efficientnetv2_s", "EfficientNet_V2_S_Weights", "efficientnet_v2_s-dd5fe13b.pth",
                acc1=84.228, acc5=96.878, num_params=21_458_488, file_mb=82.704,
                resize_size=384, crop_size=384, interpolation="bilinear",
            ),
            _torchvision(
                "efficientnetv2_m", "EfficientNet_V2_M_Weights", "efficientnet_v2_m-dc08266a.pth",
                acc1=85.112, acc5=97.156, num_params=54_139_356, file_mb=208.010,
                resize_size=480, crop_size=480, interpolation="bilinear",
            ),
            # ported from the TF original, hence its own mean = std = 0.5 and bicubic resizing
            _torchvision(
                "efficientnetv2_l", "EfficientNet_V2_L_Weights", "efficientnet_v2_l-59c71312.pth",
                acc1=85.808, acc5=97.788, num_params=118_515_272, file_mb=454.573,
                resize_size=480, crop_size=480, interpolation="bicubic", normalize="official",
            ),
        )
    }
}
# fmt: on


def sources() -> list[str]:
    return list(_REGISTRY)


def source_entries(source: str) -> dict[str, PretrainedWeights]:
    """The registry entries of ``source``, by model name."""
    if source not in _REGISTRY:
        raise ConfigError(f"Unknown pretrained weights {source!r}.", f"Choose one of {', '.join(_REGISTRY)}.")
    return _REGISTRY[source]


def list_pretrained(source: str = "imagenet") -> list[str]:
    """The models that have published weights from ``source``, in registry order."""
    return list(source_entries(source))


def get_pretrained(model: str, source: str = "imagenet") -> PretrainedWeights:
    """The registry entry of ``model``'s ``source`` weights.

    Raises:
        ConfigError: an unknown source, or a model without such weights (the message lists those with them).
    """
    entries = source_entries(source)
    if model in entries:
        return entries[model]
    raise ConfigError(
        f"There are no {source} weights for the model {model!r}.",
        f"{did_you_mean(model, entries, n=1)}Models with {source} weights: {', '.join(entries)}; for any other "
        f"model, pass your own checkpoint with {WEIGHTS_OPTION}.",
    )


def hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix a torch hub file name carries (``resnet18-f37072fd.pth`` -> ``f37072fd``), if any."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


def published_model(filename: str) -> str | None:
    """The medbench model whose published checkpoint has this file name, if any."""
    for entries in _REGISTRY.values():
        for entry in entries.values():
            if entry.filename == filename:
                return entry.model
    return None
