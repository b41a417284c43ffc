"""Shared training noise: where a model draws random masks, and how a step hands it masks drawn elsewhere.

With ``noise = "shared"`` (the default) no framework draws its own dropout or stochastic-depth masks: the
training loop draws them in numpy (:mod:`medbench.data.noise`, a pure function of seed, epoch and step),
passes them with the batch to ``Trainer.train_step(..., noise=masks)``, and every framework multiplies by the
very same arrays. A *site* is one module that draws noise, named by its PyTorch module path:

* ``dropout`` sites (``nn.Dropout`` in the head): the mask has the shape of the activation, ``(batch, features)``.
* ``stochastic_depth`` sites (torchvision's ``StochasticDepth(p, "row")`` of an EfficientNetV2 residual block):
  one value per sample, ``(batch, 1, 1, 1)``, which broadcasts over NCHW (torch) and NHWC (JAX, Keras) alike.

Mask semantics, the same at every site: *inverted* dropout. A mask element is ``0`` (dropped, probability
``p``) or ``1 / (1 - p)`` (kept, scaled so the expectation is unchanged); the layer's training-mode output is
``x * mask``, exactly what ``torch.nn.functional.dropout`` and torchvision's ``StochasticDepth`` compute from
their own Bernoulli draw. Evaluation mode ignores masks (the identity), as before.

The hand-over: a trainer opens :func:`shared_masks` around its forward pass with the masks as framework
tensors (traced values under ``jax.jit`` and ``tf.function``); each noise layer asks :func:`current_mask` for
its own site name and, when it gets one, uses it instead of its framework's RNG. Outside the context (native
noise, evaluation, prediction) the layers run their framework's own code path, unchanged. The framework
layers learn their site name once, after the model is built (``tag_noise_sites`` in each back-end).
Nothing here imports a framework.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

NoiseKind = Literal["dropout", "stochastic_depth"]


@dataclass(frozen=True)
class NoiseSite:
    """One module that draws training noise: its PyTorch path, kind, drop probability, per-sample shape."""

    name: str
    kind: NoiseKind
    p: float
    shape: tuple[int, ...]  # of one sample: (features,) for dropout, (1, 1, 1) for stochastic depth


def noise_sites(family: str, options: Mapping[str, Any], *, image_size: int) -> tuple[NoiseSite, ...]:
    """The noise sites of a ``family`` model with resolved ``options``, in forward order; ``p = 0`` left out.

    Written once from the family configs, so the three back-ends cannot disagree; each back-end checks its
    model against this list when it tags its layers.
    """
    from medbench.frameworks.families import ResNetConfig, SimpleCNNConfig

    sites: list[NoiseSite] = []
    if family == "simple_cnn":
        cfg = SimpleCNNConfig.from_options(options, image_size)
        sites.append(NoiseSite("dropout", "dropout", cfg.dropout, (cfg.hidden,)))
    elif family == "resnet":
        cfg = ResNetConfig.from_options(options, image_size)
        head = cfg.head_config
        if head.kind == "mlp":
            sites.append(NoiseSite("fc.0", "dropout", head.dropout, (512 * cfg.expansion,)))
    elif family == "efficientnetv2":
        from medbench.frameworks import efficientnet_spec as spec

        cfg = spec.EfficientNetV2Config.from_options(options)
        for s, stage in enumerate(spec.block_plan(cfg.variant, cfg.stochastic_depth_prob), start=1):
            for b, block in enumerate(stage):
                if block.residual:
                    sites.append(
                        NoiseSite(
                            f"features.{s}.{b}.stochastic_depth",
                            "stochastic_depth",
                            block.stochastic_depth_prob,
                            (1, 1, 1),
                        )
                    )
        _, last_channels = spec.head_channels(cfg.variant)
        sites.append(NoiseSite("classifier.0", "dropout", cfg.head_config.dropout, (last_channels,)))
    return tuple(site for site in sites if site.p > 0.0)


_MASKS: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "medbench_masks", default=None
)


@contextlib.contextmanager
def shared_masks(masks: Mapping[str, Any] | None) -> Iterator[None]:
    """Within this block, noise layers use ``masks`` (site name -> framework tensor) instead of their RNG.

    ``None`` (native noise) leaves every layer on its framework's own RNG.
    """
    token = _MASKS.set(masks)
    try:
        yield
    finally:
        _MASKS.reset(token)


def current_mask(site: str | None) -> Any | None:
    """The mask a trainer handed over for ``site``, or ``None`` (then the layer draws its own)."""
    masks = _MASKS.get()
    if masks is None or site is None:
        return None
    return masks.get(site)


def check_sites(found: Mapping[str, float], expected: tuple[NoiseSite, ...], *, framework: str) -> None:
    """Raises when a back-end's model has other noise sites (path -> p, ``p > 0`` only) than the family's."""
    want = {s.name: s.p for s in expected}
    if {k: round(v, 12) for k, v in found.items()} != {k: round(v, 12) for k, v in want.items()}:
        from medbench.errors import MedbenchError

        raise MedbenchError(
            f"The {framework} model's noise layers {sorted(found.items())} differ from the family's noise "
            f"sites {sorted(want.items())}.",
            "Keep frameworks/noise.py noise_sites in step with the model (or run with noise='native').",
        )
