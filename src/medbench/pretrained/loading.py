"""Loading a torchvision-format checkpoint into a model of any back-end: the backbone exactly, the head if it fits.

The backbone must fit exactly; the classifier head is loaded only when it has the same names and shapes as
the model's (ImageNet's 1000 classes rarely match), otherwise it stays freshly initialised. Every back-end
names its parameters as torchvision does, so one ``.pth`` serves PyTorch, JAX and Keras alike: it is read
with :func:`medbench.frameworks.checkpoints.read_state_dict` (numpy only, no pickled code runs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medbench.errors import ConfigError
from medbench.pretrained.cache import file_sha256
from medbench.pretrained.registry import published_model


def _fit_hints(family: str, wrong: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> list[str]:
    """What a user can change when a backbone shape differs: the stem of small inputs, or grey images."""
    hints = []
    for key, (given, own) in wrong.items():
        if len(given) != 4 or given[0] != own[0]:
            continue  # only a first convolution can differ in input channels or kernel alone
        if given[1] == 3 and own[1] != 3:  # only the first convolution sees the image's channels
            hints.append(
                f"The weights expect 3-channel (RGB) images but the model was built for {own[1]} channel(s): "
                "set data.to_rgb=true (--to-rgb) to repeat grey images to RGB."
            )
        if family == "resnet" and key == "conv1.weight" and given[2:] != own[2:]:
            hints.append(
                f"The checkpoint's stem is ImageNet's {given[2]}x{given[3]} conv1, but the model has the "
                f"{own[2]}x{own[3]} small-input stem (the default for images under 64 px): set "
                "model_options.small_input=false, or upscale the images with data.resize_to (e.g. 64 or 224), "
                "which picks the ImageNet stem."
            )
    return hints


def load_pretrained(framework: Any, model: Any, path: str | os.PathLike, *, family: str) -> dict[str, Any]:
    """Loads a torchvision-format checkpoint's backbone into ``model`` (any back-end); the head if it fits.

    Every backbone tensor must be there with the model's shape, and no other (a different depth or width is
    a different network). The head (:data:`medbench.finetune.HEAD_PREFIXES` of ``family``) is loaded only
    when the checkpoint has exactly the model's head names and shapes; otherwise it keeps its fresh
    initialisation, as for 1000 ImageNet classes and a 9-class dataset.

    Args:
        framework: a :class:`medbench.frameworks.base.Backend`.
        model: a model that framework built.
        path: a ``.pth`` (``torch.save`` zip) or ``.safetensors`` file with PyTorch names.
        family: the model family (``resnet``, ``efficientnetv2``, ...).

    Returns:
        ``{"path", "sha256", "loaded": number of tensors copied, "skipped_head": the checkpoint's head
        tensors left out}``.

    Raises:
        WeightsError: the backbone does not fit; the fix says what to change (stem, RGB input, model).
    """
    import numpy as np  # here, not at the top: the CLI imports this module and starts faster without numpy

    from medbench.finetune import HEAD_PREFIXES
    from medbench.frameworks.checkpoints import WeightsError, check_state_dict, is_ignored, read_state_dict

    if family not in HEAD_PREFIXES:
        raise ConfigError(
            f"Pretrained weights do not know the {family} family.", "Use resnet or efficientnetv2."
        )
    path = Path(path)
    state = {k: v for k, v in read_state_dict(path).items() if not is_ignored(k)}
    own = {k: tuple(np.shape(v)) for k, v in framework.state_dict(model).items() if not is_ignored(k)}

    def in_head(key: str) -> bool:
        return key.split(".", 1)[0] in HEAD_PREFIXES[family]

    own_backbone = {k: s for k, s in own.items() if not in_head(k)}
    backbone = {k: v for k, v in state.items() if not in_head(k)}
    try:
        check_state_dict(own_backbone, backbone, strict=True, source=f"The backbone in {path}")
    except WeightsError as err:
        wrong = {
            k: (tuple(np.shape(v)), own[k]) for k, v in backbone.items() if k in own and np.shape(v) != own[k]
        }
        hints = _fit_hints(family, wrong)
        published = published_model(path.name)
        if not hints and published:
            hints.append(
                f"These are torchvision's weights for {published}: use model {published} with its default "
                "architecture options (or pass other weights with --weights)."
            )
        fallback = (
            "The backbone must be the checkpoint's architecture: check the model name and the options that "
            "shape it (block, layers, variant, small_input, in_channels)."
        )
        raise WeightsError(err.problem, " ".join(hints) or fallback) from None

    own_head = {k: s for k, s in own.items() if in_head(k)}
    head = {k: v for k, v in state.items() if in_head(k)}
    head_fits = set(head) == set(own_head) and all(np.shape(v) == own_head[k] for k, v in head.items())
    chosen = {**backbone, **(head if head_fits else {})}
    framework.load_state_dict(model, chosen, strict=False)  # complete for the backbone, checked above
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "loaded": len(chosen),
        "skipped_head": [] if head_fits else sorted(head),
    }
