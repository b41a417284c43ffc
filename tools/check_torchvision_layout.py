"""Checks medbench's PyTorch models against torchvision's, key for key and logit for logit.

For every entry of :data:`MODELS` (name -> (our builder, torchvision builder)):

1. our ``state_dict`` has exactly torchvision's keys, in the same order, with the same shapes;
2. the trainable parameter counts are equal;
3. torchvision's (randomly initialised) ``state_dict`` loads into our model through medbench's converter
   (``FRAMEWORK.load_state_dict``, strict) and both give *identical* eval-mode logits.

It needs torchvision, which medbench's main environment does not have (importing TensorFlow before
torchvision crashes there), so it runs in its own environment::

    PYTHONPATH=src .venv-torchvision/bin/python tools/check_torchvision_layout.py [--json] [--size 64]

Exit status 0 when every model passes. ``tests/frameworks/test_torchvision_layout.py`` runs it.
To add a model, add one line to :data:`MODELS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

import numpy as np
import torch
import torchvision

from medbench.config import RuntimeConfig
from medbench.frameworks import get_framework

FRAMEWORK = get_framework("torch")
NUM_CLASSES, IN_CHANNELS = 1000, 3  # torchvision's defaults


def ours(name: str, **options) -> Callable[[int], torch.nn.Module]:
    """Our model ``name`` built for ``image_size`` with torchvision's class and channel counts."""

    def build(image_size: int) -> torch.nn.Module:
        return FRAMEWORK.build_model(
            name, num_classes=NUM_CLASSES, in_channels=IN_CHANNELS, image_size=image_size, **options
        )

    return build


# name -> (our builder taking the image size, torchvision's builder); the extension point for new families
MODELS: dict[str, tuple[Callable[[int], torch.nn.Module], Callable[[], torch.nn.Module]]] = {
    "resnet18": (ours("resnet18", small_input=False), torchvision.models.resnet18),
    "resnet50": (ours("resnet50", small_input=False), torchvision.models.resnet50),
    "efficientnetv2_s": (ours("efficientnetv2_s"), torchvision.models.efficientnet_v2_s),
    "efficientnetv2_m": (ours("efficientnetv2_m"), torchvision.models.efficientnet_v2_m),
    "efficientnetv2_l": (ours("efficientnetv2_l"), torchvision.models.efficientnet_v2_l),
}


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def _perturb_batch_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Random BatchNorm affine and running statistics, so eval mode must really use all four of them."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.weight.uniform_(0.5, 1.5)
            m.bias.normal_(0.0, 0.2)
            m.running_mean.normal_(0.0, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    return model


def check(name: str, image_size: int, seed: int = 0) -> dict:
    build_ours, build_theirs = MODELS[name]
    torch.manual_seed(seed)
    theirs = _perturb_batch_norms(build_theirs()).eval()
    mine = build_ours(image_size).eval()
    their_state, my_state = theirs.state_dict(), mine.state_dict()
    their_layout = [(k, tuple(v.shape)) for k, v in their_state.items()]
    my_layout = [(k, tuple(v.shape)) for k, v in my_state.items()]
    result = {
        "model": name,
        "keys": len(their_layout),
        "same_layout": my_layout == their_layout,
        "missing": sorted(set(their_state) - set(my_state))[:5],
        "unexpected": sorted(set(my_state) - set(their_state))[:5],
        "shape_mismatches": [k for k, s in their_layout if k in my_state and tuple(my_state[k].shape) != s][
            :5
        ],
        "params": _trainable(mine),
        "torchvision_params": _trainable(theirs),
    }
    if not result["same_layout"]:
        return {**result, "ok": False}
    FRAMEWORK.load_state_dict(mine, {k: v.numpy() for k, v in their_state.items()}, strict=True)
    images = np.random.default_rng(seed).standard_normal((2, image_size, image_size, IN_CHANNELS), np.float32)
    with torch.inference_mode():
        expected = theirs(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()).numpy()
    got = FRAMEWORK.predict(mine, images)
    result["max_abs_logit_diff"] = float(np.max(np.abs(got - expected)))
    result["identical_logits"] = bool(np.array_equal(got, expected))
    result["ok"] = result["identical_logits"] and result["params"] == result["torchvision_params"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64, help="image size for the logit check (default 64)")
    parser.add_argument("--model", action="append", help="check only these (repeatable); default: all")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    args = parser.parse_args(argv)
    # contiguous NCHW on the CPU, as torchvision's model runs, so identical logits can be asked for
    FRAMEWORK.configure(RuntimeConfig(device="cpu", channels_last=False, threads=torch.get_num_threads()))
    results = [check(name, args.size) for name in (args.model or MODELS)]
    if args.json:
        print(
            json.dumps(
                {"torchvision": torchvision.__version__, "torch": torch.__version__, "results": results}
            )
        )
    else:
        for r in results:
            status = "ok " if r["ok"] else "FAIL"
            detail = f"max |diff| {r.get('max_abs_logit_diff', float('nan')):.1e}"
            print(f"{status} {r['model']:<20} {r['keys']} keys, {r['params']:,} params, {detail}")
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
