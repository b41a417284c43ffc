"""The reference initialisation, drawn once in numpy, so every framework's run starts from the same weights.

With ``init = "shared"`` (the default) a run does not keep its framework's own random draw: the trainer loop
draws every tensor of the model's PyTorch-named state dict here, from seed *s*, by the rule the PyTorch
back-end (torchvision's layout and initialisation) applies to it, and loads the result through the
framework's state-dict converter. PyTorch, JAX and Keras runs of one seed then start bit for bit equal, so
a difference in their results is the framework's arithmetic, not the dice.

The rules, per module kind (a module is the key without its last component):

* **BatchNorm** (it has ``running_mean``): weight 1 (0 for the last BatchNorm of each residual block with
  ResNet's ``zero_init_residual``), bias 0, running mean 0, running variance 1, ``num_batches_tracked`` 0.
* **Convolution** (4-d weight): torchvision's ``kaiming_normal_(mode="fan_out", nonlinearity="relu")``, i.e.
  ``N(0, 2 / fan_out)`` with ``fan_out = out_channels * kh * kw`` (PyTorch's fan, groups or not); bias 0.
  Every family here initialises its convolutions so (ResNet and simple_cnn through ``layers.conv2d``,
  EfficientNetV2 through ``reset_parameters``, its squeeze-excitation convolutions included).
* **Linear** (2-d weight): PyTorch's default, ``kaiming_uniform_(a=sqrt(5))`` = ``U(+-1/sqrt(fan_in))``, and
  the bias ``U(+-1/sqrt(fan_in))`` (ResNet, simple_cnn); EfficientNetV2's classifier instead takes
  ``U(+-1/sqrt(out_features))`` and a zero bias (torchvision's ``EfficientNet.__init__``).

Each tensor has its own stream, ``default_rng([seed, 5, *words of sha256(key)])``, so a tensor's value depends
only on the seed and its name: not on the order of the keys, nor on which other tensors the model has (a
fresh fine-tuning head is drawn exactly as a head trained from scratch would be). numpy's generators are
stable across versions for ``standard_normal`` and ``random`` (NEP 19), so a seed means the same start
tomorrow. Nothing here imports a framework.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from medbench.errors import ConfigError

_INIT_STREAM = 5  # beside the pipeline's streams 1-3 and the noise stream 4 (data/noise.py)
_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class Rule:
    """How one tensor is drawn: ``normal`` (``scale`` = std), ``uniform`` (``U(-scale, scale)``) or
    ``constant`` (every element = ``scale``)."""

    kind: Literal["normal", "uniform", "constant"]
    scale: float

    def draw(self, rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if self.kind == "constant":
            return np.full(shape, self.scale, dtype=dtype)
        if self.kind == "normal":
            values = rng.standard_normal(shape, dtype=np.float32) * np.float32(self.scale)
        else:  # U[-b, b): 2b * U[0, 1) - b, in float32 as PyTorch's uniform_ draws it
            values = rng.random(shape, dtype=np.float32) * np.float32(2 * self.scale) - np.float32(self.scale)
        return values.astype(dtype, copy=False)


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """PyTorch's ``_calculate_fan_in_and_fan_out``: (in * receptive field, out * receptive field)."""
    receptive = math.prod(shape[2:]) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _zero_init_bns(family: str, options: Mapping[str, Any], image_size: int) -> tuple[str, ...]:
    """Suffixes of the BatchNorm modules whose weight starts at 0 (ResNet's ``zero_init_residual``)."""
    if family != "resnet":
        return ()
    from medbench.frameworks.families import ResNetConfig

    cfg = ResNetConfig.from_options(options, image_size)
    if not cfg.zero_init_residual:
        return ()
    return (".bn3",) if cfg.block == "bottleneck" else (".bn2",)


def reference_rules(
    family: str, options: Mapping[str, Any], shapes: Mapping[str, tuple[int, ...]], *, image_size: int
) -> dict[str, Rule]:
    """The rule of every key of a state dict (PyTorch names and shapes) of a ``family`` model.

    Raises:
        ConfigError: a tensor no rule covers (a layer kind this module does not know yet).
    """
    shapes = {k: tuple(int(d) for d in s) for k, s in shapes.items()}
    modules: dict[str, dict[str, tuple[int, ...]]] = {}
    for key, shape in shapes.items():
        module, _, leaf = key.rpartition(".")
        modules.setdefault(module, {})[leaf] = shape
    zero_bns = _zero_init_bns(family, options, image_size)
    rules: dict[str, Rule] = {}
    for module, leaves in modules.items():
        weight = leaves.get("weight")
        if "running_mean" in leaves:  # BatchNorm
            gamma = 0.0 if module.startswith("layer") and module.endswith(zero_bns) else 1.0
            kind = {"weight": gamma, "bias": 0.0, "running_mean": 0.0, "running_var": 1.0}
            kind["num_batches_tracked"] = 0.0
            new = {leaf: Rule("constant", kind[leaf]) for leaf in leaves if leaf in kind}
        elif weight is not None and len(weight) == 4:  # convolution
            _, fan_out = _fans(weight)
            new = {"weight": Rule("normal", math.sqrt(2.0 / fan_out)), "bias": Rule("constant", 0.0)}
        elif weight is not None and len(weight) == 2:  # linear
            fan_in, _ = _fans(weight)
            if family == "efficientnetv2":
                from medbench.frameworks.efficientnet_spec import linear_init_range

                new = {"weight": Rule("uniform", linear_init_range(weight[0])), "bias": Rule("constant", 0.0)}
            else:
                bound = 1.0 / math.sqrt(fan_in)
                new = {"weight": Rule("uniform", bound), "bias": Rule("uniform", bound)}
        else:
            new = {}
        for leaf in leaves:
            key = f"{module}.{leaf}" if module else leaf
            if leaf not in new:
                raise ConfigError(
                    f"No reference initialisation for {key} (shape {shapes[key]}) of the {family} family.",
                    "Run with init='native' (--init native), or add the layer kind to "
                    "medbench.frameworks.initialization.",
                )
            rules[key] = new[leaf]
    return rules


def _stream(seed: int, key: str) -> np.random.Generator:
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    words = np.frombuffer(digest[:16], dtype="<u4").tolist()
    return np.random.default_rng([int(seed), _INIT_STREAM, *words])


def draw_state(
    family: str,
    options: Mapping[str, Any],
    like: Mapping[str, np.ndarray],
    *,
    seed: int,
    image_size: int,
) -> dict[str, np.ndarray]:
    """A fresh state dict for a model whose PyTorch-named state dict is ``like`` (names, shapes, dtypes).

    Args:
        family: the model family (``resolve_model``'s first value).
        options: the family options, resolved (the registry's plus the user's).
        like: the model's current state dict (``Framework.state_dict``), used for names, shapes and dtypes.
        seed: the run's seed.
        image_size: the input size the model was built for (it decides ResNet's stem).
    """
    rules = reference_rules(family, options, {k: np.shape(v) for k, v in like.items()}, image_size=image_size)
    return {
        key: rules[key].draw(_stream(seed, key), tuple(np.shape(value)), np.asarray(value).dtype)
        for key, value in like.items()
    }


def apply_shared_init(
    fw: Any, model: Any, name: str, options: Mapping[str, Any], *, seed: int, image_size: int
):
    """Replaces ``model``'s weights (built by ``fw``) by the reference draw of ``seed``; returns a record.

    ``name`` is the registered model, ``options`` the user's model options.
    """
    from medbench.frameworks.families import resolve_model

    family, resolved = resolve_model(name, options)
    state = draw_state(family, resolved, fw.state_dict(model), seed=seed, image_size=image_size)
    fw.load_state_dict(model, state)
    return {"init": "shared", "seed": int(seed), "tensors": len(state)}
