"""What the equivalence tests run: model cases, training cases, and the worker tasks built from them.

PyTorch is the reference: its job calibrates each model (non-trivial BatchNorm statistics) and exports the
weights; the JAX and Keras jobs load exactly those weights and must reproduce logits, losses and updates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    id: str
    model: str
    image_size: int
    in_channels: int
    num_classes: int
    options: dict[str, Any] = field(default_factory=dict)
    batch: int = 4

    def build(self, **overrides: Any) -> dict[str, Any]:
        return {
            "model": self.model,
            "image_size": self.image_size,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "options": {**self.options, **overrides},
        }


# grey and RGB inputs, non-default class counts, both ResNet stems (small_input resolves to False at 64 px),
# the mlp head (dropout, Linear, ReLU, Linear as fc.0..fc.3; its dropout must be off in evaluation)
FAST_CASES = [
    Case("simple_cnn_28_grey", "simple_cnn", 28, 1, 9),
    Case("simple_cnn_64_rgb_2convs", "simple_cnn", 64, 3, 5, {"convs_per_block": 2, "widths": (16, 32, 48)}),
    Case("resnet18_28_rgb", "resnet18", 28, 3, 11),
    Case("resnet18_64_grey", "resnet18", 64, 1, 2),
    Case("resnet50_28_rgb", "resnet50", 28, 3, 4),
    Case("resnet18_28_rgb_mlp", "resnet18", 28, 3, 5, {"head": "mlp", "head_hidden": 64}),
]
# EfficientNet at 96 px: at smaller sizes its last stage is 1x1 and a calibrated model too ill-conditioned
# to compare (see test_efficientnet.py)
SLOW_CASES = [
    Case("resnet50_64_grey", "resnet50", 64, 1, 7),
    Case("resnet18_224_rgb", "resnet18", 224, 3, 1000, batch=2),
    Case("resnet18_28_big_stem", "resnet18", 28, 3, 6, {"small_input": False}),
    Case("simple_cnn_224_rgb", "simple_cnn", 224, 3, 3, batch=2),
    Case(
        "efficientnetv2_s_96_rgb_mlp",
        "efficientnetv2_s",
        96,
        3,
        6,
        {"head": "mlp", "head_hidden": 64},
        batch=2,
    ),
]
EXPORT_FRESH = {"simple_cnn_28_grey", "resnet18_28_rgb"}  # fresh weights, for the initialisation test
# fresh weights of the head only (keys starting with the prefix), for the mlp-head initialisation test
EXPORT_FRESH_HEAD = {"resnet18_28_rgb_mlp": "fc."}

_CNN = {"dropout": 0.0}
TRAIN_CASES: list[dict[str, Any]] = [
    {
        "id": "train_cnn_sgd_nesterov",
        "case": Case("cnn", "simple_cnn", 28, 1, 9, _CNN, batch=8),
        "optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4},
        "lrs": [None, 0.05],
    },
    {
        "id": "train_cnn_adam_smoothing",
        "case": Case("cnn", "simple_cnn", 28, 3, 7, _CNN, batch=8),
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        "label_smoothing": 0.1,
        "lrs": [None, 5e-4],
    },
    {
        "id": "train_cnn_adamw_bce",
        "case": Case("cnn", "simple_cnn", 28, 1, 6, _CNN, batch=8),
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        "loss": "bce_with_logits",
        "lrs": [None, 2e-3],
    },
    {
        "id": "train_resnet18_sgd",
        "case": Case("r18", "resnet18", 28, 3, 4, batch=8),
        "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 1e-4},
        "lrs": [None, 0.005],
    },
    # fine-tuning plans: frozen stages (and their BatchNorm in inference mode), a backbone learning-rate
    # scale, gradual unfreezing between steps (a new group with fresh optimizer state), frozen BatchNorm
    {
        "id": "train_resnet18_gradual_adam",
        "case": Case("r18", "resnet18", 28, 3, 4, {"head": "mlp", "head_dropout": 0.0}, batch=8),
        "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 1e-4},
        "finetune": {"trainable": "top", "top_stages": 1, "unfreeze_every": 2, "backbone_lr_scale": 0.1},
        "lrs": [None, 5e-4, 2e-3],
        "epochs": [0, 1, 2],
    },
    {
        "id": "train_cnn_frozen_bn_sgd",
        "case": Case("cnn", "simple_cnn", 28, 1, 5, _CNN, batch=8),
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
        "finetune": {"trainable": "all", "freeze_bn": True, "backbone_lr_scale": 0.5},
        "lrs": [None, 0.1],
        "epochs": [0, 0],
    },
    {
        "id": "train_cnn_linear_probe_then_all_adamw",
        "case": Case("cnn", "simple_cnn", 28, 3, 3, _CNN, batch=8),
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        "finetune": {"trainable": "head", "unfreeze_every": 1, "backbone_lr_scale": 0.3},
        "lrs": [None, None, 5e-4],
        "epochs": [0, 1, 3],
    },
    {
        "id": "train_resnet18_adam",
        "case": Case("r18", "resnet18", 28, 3, 4, batch=8),
        "optimizer": {"name": "adam", "lr": 1e-3},
        "lrs": [None, 1e-4],
        "slow": True,
    },
]
WEIGHTS_CASE = Case("weights", "simple_cnn", 28, 1, 9)

# Keras on its JAX and torch backends runs the Keras code that the keras (TensorFlow) job checks on every
# case; only the training step is each backend's own. The default suite runs these two on the smallest cases
# (SimpleCNN at 28 px: every optimizer, loss and fine-tuning plan, the weights checks); the ResNet cases are
# slow for them (see conftest.py).
KERAS_BACKENDS = ("keras-jax", "keras-torch")


def in_default_for_keras_backends(task_id: str) -> bool:
    """Whether ``keras-jax``/``keras-torch`` run the task ``task_id`` of the fast plan in the default suite."""
    cases = {c.id: c for c in FAST_CASES}
    trains = {spec["id"]: spec for spec in TRAIN_CASES}
    if task_id in cases:
        return task_id == "simple_cnn_28_grey"
    if task_id in trains:
        return trains[task_id]["case"].model == "simple_cnn"
    return True  # the weights and optimizer tasks: no model to compile


# The optimizers alone, on given gradients spanning 1e-9..1 (so where eps sits matters) and exact zeros,
# three steps with a different learning rate each (so momentum and the learning rate interact).
SGD_LRS, ADAM_LRS = [0.1, 0.05, 0.2], [1e-3, 5e-4, 2e-3]
OPTIMIZER_CASES: list[dict[str, Any]] = [
    {"id": "opt_sgd", "optimizer": {"name": "sgd", "momentum": 0.0}, "lrs": SGD_LRS},
    {"id": "opt_sgd_momentum_l2", "optimizer": {"name": "sgd", "weight_decay": 1e-2}, "lrs": SGD_LRS},
    {
        "id": "opt_sgd_nesterov",
        "optimizer": {"name": "sgd", "nesterov": True, "weight_decay": 5e-4},
        "lrs": SGD_LRS,
    },
    {"id": "opt_adam", "optimizer": {"name": "adam"}, "lrs": ADAM_LRS},
    {
        "id": "opt_adam_l2_betas",
        "optimizer": {"name": "adam", "weight_decay": 1e-2, "betas": (0.8, 0.99), "eps": 1e-6},
        "lrs": ADAM_LRS,
    },
    {"id": "opt_adamw", "optimizer": {"name": "adamw", "weight_decay": 0.1}, "lrs": ADAM_LRS},
]  # SGD's momentum defaults to 0.9 (OptimizerConfig)


def inputs(cases: list[Case], seed: int = 0) -> dict[str, np.ndarray]:
    """Random NHWC images per case (standardised, as the pipeline's), plus a calibration batch."""
    rng = np.random.default_rng(seed)
    out = {}
    for case in cases:
        shape = (case.image_size, case.image_size, case.in_channels)
        out[f"x/{case.id}"] = rng.standard_normal((case.batch, *shape), dtype=np.float32)
        out[f"calib/{case.id}"] = rng.standard_normal((8, *shape), dtype=np.float32)
    return out


def train_cases(*, slow: bool) -> list[dict[str, Any]]:
    return [spec for spec in TRAIN_CASES if spec.get("slow", False) == slow]


def train_inputs(seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for spec in TRAIN_CASES:
        case, tid = spec["case"], spec["id"]
        shape = (case.batch, case.image_size, case.image_size, case.in_channels)
        out[f"calib/{tid}"] = rng.standard_normal(shape, dtype=np.float32)
        for step in range(len(spec["lrs"])):
            out[f"x/{tid}/{step}"] = rng.standard_normal(shape, dtype=np.float32)
            if spec.get("loss") == "bce_with_logits":
                out[f"y/{tid}/{step}"] = (rng.random((case.batch, case.num_classes)) < 0.3).astype(np.float32)
            else:
                out[f"y/{tid}/{step}"] = rng.integers(0, case.num_classes, (case.batch, 1), dtype=np.int64)
    return out


def model_tasks(cases: list[Case], *, reference: bool) -> list[dict[str, Any]]:
    """``reference``: calibrate and export (torch); otherwise load the reference weights (``w/<id>/``)."""
    tasks = []
    for case in cases:
        task = {
            "id": case.id,
            "kind": "model",
            "build": case.build(),
            "inputs": f"x/{case.id}",
            "flops": True,
        }
        task.update({"calibrate": f"calib/{case.id}"} if reference else {"weights": f"w/{case.id}/"})
        task["export_fresh"] = True if case.id in EXPORT_FRESH else EXPORT_FRESH_HEAD.get(case.id, False)
        tasks.append(task)
    return tasks


def train_tasks(*, reference: bool, slow: bool = False) -> list[dict[str, Any]]:
    tasks = []
    for spec in train_cases(slow=slow):
        tid = spec["id"]
        steps = [
            {"images": f"x/{tid}/{i}", "labels": f"y/{tid}/{i}", "lr": lr} for i, lr in enumerate(spec["lrs"])
        ]
        task = {
            "id": tid,
            "kind": "train",
            "build": spec["case"].build(),
            "optimizer": spec["optimizer"],
            "loss": spec.get("loss", "cross_entropy"),
            "label_smoothing": spec.get("label_smoothing", 0.0),
            "steps": steps,
        }
        if "finetune" in spec:
            task["finetune"] = spec["finetune"]
            for step, epoch in zip(steps, spec["epochs"], strict=True):
                step["epoch"] = epoch
        task.update({"calibrate": f"calib/{tid}"} if reference else {"weights": f"w/{tid}/"})
        tasks.append(task)
    return tasks


def finetune_plans(spec: dict[str, Any], keys: list[str]) -> list:
    """The :class:`~medbench.frameworks.base.TrainPlan` (or ``None``) of each step of a fine-tuning case.

    ``keys`` are the model's PyTorch state_dict names; the worker computes the same plans from its own model.
    """
    from medbench.config import FinetuneConfig
    from medbench.finetune import plan_for_epoch
    from medbench.frameworks.families import resolve_model

    case = spec["case"]
    family, _ = resolve_model(case.model, case.options)
    config = FinetuneConfig(**spec["finetune"])
    return [plan_for_epoch(family, keys, config, epoch) for epoch in spec["epochs"]]


def weights_task(checkpoints: Path, *, reference: bool) -> dict[str, Any]:
    case = WEIGHTS_CASE
    task = {
        "id": "weights",
        "kind": "weights",
        "build": case.build(),
        "inputs": f"x/{case.id}",
        "shape_key": "fc2.weight",
        "missing_key": "blocks.1.0.bn.running_var",
        "pth": str(checkpoints / "reference.pth"),
        "safetensors": str(checkpoints / "reference.safetensors"),
        "evil": str(checkpoints / "evil.pth"),
        "evil_marker": str(checkpoints / "EVIL_CODE_RAN"),
    }
    task.update({"calibrate": f"calib/{case.id}"} if reference else {"weights": f"w/{case.id}/"})
    return task


def reference_weights(job, task_ids: list[str]) -> dict[str, np.ndarray]:
    """The torch job's starting weights per task, keyed ``w/<task id>/<torch name>`` for the other jobs."""
    out = {}
    for tid in task_ids:
        for key, value in job.state(tid, prefix="init/").items():
            out[f"w/{tid}/{key}"] = value
    return out


def optimizer_inputs(seed: int = 3, size: int = 64) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {"opt/params": rng.standard_normal(size, dtype=np.float32)}
    for step in range(3):
        scale = 10.0 ** rng.uniform(-9, 0, size)
        grad = (rng.standard_normal(size) * scale).astype(np.float32)
        grad[rng.random(size) < 0.1] = 0.0
        out[f"opt/grads/{step}"] = grad
    return out


def optimizer_tasks() -> list[dict[str, Any]]:
    return [
        {
            "id": spec["id"],
            "kind": "optimizer",
            "optimizer": {**spec["optimizer"], "lr": spec["lrs"][0]},
            "lrs": spec["lrs"],
            "params": "opt/params",
            "grads": "opt/grads",
        }
        for spec in OPTIMIZER_CASES
    ]
