"""The PyTorch trainer: eager steps with ``torch.optim``, autocast for bf16/fp16, GradScaler for GPU fp16."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medbench.frameworks.base import LossName, OptimizerSpec, StepResult, Trainer
from medbench.frameworks.torch.runtime import TorchRuntime
from medbench.frameworks.training import check_recipe, targets


def create_optimizer(params, spec: OptimizerSpec) -> torch.optim.Optimizer:
    """``torch.optim`` for ``spec`` over ``params`` (an iterable of tensors that require grad)."""
    params = list(params)
    if spec.name == "sgd":
        return torch.optim.SGD(
            params, lr=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, weight_decay=spec.weight_decay
        )
    cls = torch.optim.AdamW if spec.name == "adamw" else torch.optim.Adam
    return cls(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay)


class TorchTrainer(Trainer):
    def __init__(
        self,
        model: nn.Module,
        runtime: TorchRuntime,
        *,
        optimizer: OptimizerSpec,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
    ):
        check_recipe(optimizer, loss, label_smoothing)
        self._model, self._runtime = model, runtime
        self._weight = (
            None
            if class_weights is None
            else torch.tensor(class_weights, dtype=torch.float32, device=runtime.device)
        )
        self._loss, self._smoothing = loss, label_smoothing
        self.optimizer = create_optimizer((p for p in model.parameters() if p.requires_grad), optimizer)
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
        use_scaler = runtime.settings.precision == "fp16" and runtime.device == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    @property
    def model(self) -> nn.Module:
        return self._model

    def _loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self._loss == "bce_with_logits":
            return F.binary_cross_entropy_with_logits(logits, y)
        return F.cross_entropy(logits, y, weight=self._weight, label_smoothing=self._smoothing)

    def train_step(self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None) -> StepResult:
        if lr is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr
        x = self._runtime.to_input(images)
        y = torch.from_numpy(targets(labels, self._loss)).to(self._runtime.device, non_blocking=True)
        self._model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with self._runtime.autocast():
            loss = self._loss_fn(self._model(x), y)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return StepResult(loss=float(loss.detach()))

    @torch.inference_mode()
    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        self._model.eval()
        with self._runtime.autocast():
            logits = self._model(self._runtime.to_input(images))
        return logits.float().cpu().numpy()

    def save_state(self, path) -> Path:
        """Model, optimizer and loss-scaler state in one file, written atomically."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self._model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
        }
        tmp = folder / "torch_state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, folder / "torch_state.pt")
        return folder

    def load_state(self, path) -> None:
        state = torch.load(
            Path(path) / "torch_state.pt", map_location=self._runtime.device, weights_only=True
        )
        self._model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
