"""The PyTorch trainer: eager steps with ``torch.optim``, autocast for bf16/fp16, GradScaler for GPU fp16.

With ``runtime.compile = true`` the training forward pass runs through ``torch.compile(model)`` (inductor;
AOTAutograd compiles its backward too); the optimizer step stays eager, and evaluation runs the module
itself, so compiling never touches the weights' names or what ``save_state`` writes.

A fine-tuning :class:`~medbench.frameworks.base.TrainPlan` maps onto ``torch.optim`` directly, which makes
this back-end the reference the others are compared with: each plan group is a parameter group (with its
``lr_scale`` and ``name`` stored in the group dict), parameters in no group do not require grad and are in
no group, and the BatchNorm layers of ``frozen_norm`` are put back into eval mode for every step.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medbench.config import OptimizerConfig
from medbench.errors import ConfigError, MedbenchError
from medbench.frameworks.base import LossName, StepResult, Trainer, TrainPlan
from medbench.frameworks.noise import shared_masks
from medbench.frameworks.torch.runtime import TorchRuntime
from medbench.frameworks.training import check_recipe, targets


def create_optimizer(params, spec: OptimizerConfig) -> torch.optim.Optimizer:
    """``torch.optim`` for ``spec`` over ``params`` (tensors that require grad, or parameter-group dicts)."""
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
        optimizer: OptimizerConfig,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
        plan: TrainPlan | None = None,
    ):
        check_recipe(loss, label_smoothing)
        self._model, self._runtime = model, runtime
        # the compiled module shares the parameters: only the training forward pass goes through it
        self._forward = torch.compile(model) if runtime.settings.compile else model
        self._weight = (
            None
            if class_weights is None
            else torch.tensor(class_weights, dtype=torch.float32, device=runtime.device)
        )
        self._loss, self._smoothing = loss, label_smoothing
        # the step's learning rate before any group's scale: groups that join later start from it
        self._base_lr = optimizer.lr
        self._frozen_norm: list[nn.Module] = []
        if plan is None:
            self.optimizer = create_optimizer((p for p in model.parameters() if p.requires_grad), optimizer)
        else:
            named = self._check_plan(plan)
            self.optimizer = create_optimizer([self._group(g, named) for g in plan.groups], optimizer)
            self._apply_freezing(plan, named)
        # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
        use_scaler = runtime.settings.precision == "fp16" and runtime.device == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    @property
    def model(self) -> nn.Module:
        return self._model

    # ---- fine-tuning plans -------------------------------------------------------------------------------
    def _check_plan(self, plan: TrainPlan) -> dict[str, nn.Parameter]:
        """The model's parameters by name, once ``plan`` is known to fit the model."""
        named = dict(self._model.named_parameters())
        names = [g.name for g in plan.groups]
        listed = [p for g in plan.groups for p in g.params]
        problems = []
        if len(set(names)) != len(names):
            problems.append(f"group names repeat ({', '.join(names)})")
        if len(set(listed)) != len(listed):
            problems.append("a parameter is in more than one group")
        unknown = [p for p in listed if p not in named]
        if unknown:
            problems.append(f"{len(unknown)} parameter(s) the model does not have, e.g. {unknown[0]!r}")
        if not listed:
            problems.append("no parameter trains")
        for path in plan.frozen_norm:
            try:
                module = self._model.get_submodule(path)
            except AttributeError:
                module = None
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                problems.append(f"frozen_norm names {path!r}, which is no BatchNorm layer of the model")
        if problems:
            raise ConfigError(
                f"The training plan does not fit the model: {'; '.join(problems)}.",
                "Compute the plan from this model's state_dict names (medbench.finetune.plan_for_epoch).",
            )
        return named

    def _group(self, group, named: dict[str, nn.Parameter]) -> dict:
        """A ``torch.optim`` parameter group for a plan's group, at the current learning rate."""
        return {
            "params": [named[p] for p in group.params],
            "lr": self._base_lr * group.lr_scale,
            "lr_scale": group.lr_scale,
            "name": group.name,
        }

    def _apply_freezing(self, plan: TrainPlan, named: dict[str, nn.Parameter]) -> None:
        trainable = plan.trainable
        for name, param in named.items():
            if name not in trainable:
                param.grad = None  # a gradient left from an earlier plan must not linger
            # autograd computes no gradient for frozen parameters (nor below them, unless something needs it)
            param.requires_grad_(name in trainable)
        self._frozen_norm = [self._model.get_submodule(path) for path in plan.frozen_norm]

    def set_plan(self, plan: TrainPlan) -> None:
        """Switches to ``plan`` between steps; see :class:`~medbench.frameworks.base.TrainPlan`.

        Groups of the old plan keep their dict (hyper-parameters) and their parameters' state (momentum
        buffers, Adam moments and step counts); new groups are added with ``add_param_group``, with no
        state, exactly as one would by hand. Parameters that leave the optimizer lose their state.
        """
        named = self._check_plan(plan)
        opt = self.optimizer
        old = {g["name"]: g for g in opt.param_groups if "name" in g}
        kept, fresh = [], []
        for g in plan.groups:
            if g.name not in old:
                fresh.append(g)
                continue
            group = old[g.name]
            before = {id(p) for p in group["params"]}
            group.update(self._group(g, named))
            kept.append((group, [p for p in group["params"] if id(p) in before]))
        # state survives only for a parameter that stays in the group it had it in
        survivors = {id(p) for _, params in kept for p in params}
        for param in [p for p in opt.state if id(p) not in survivors]:
            del opt.state[param]
        opt.param_groups = [group for group, _ in kept]
        for g in fresh:
            opt.add_param_group(self._group(g, named))
        by_name = {group["name"]: group for group in opt.param_groups}
        opt.param_groups = [by_name[g.name] for g in plan.groups]  # plan order, as a fresh trainer's
        self._apply_freezing(plan, named)

    # ---- steps -------------------------------------------------------------------------------------------
    def _loss_fn(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self._loss == "bce_with_logits":
            return F.binary_cross_entropy_with_logits(logits, y)
        return F.cross_entropy(logits, y, weight=self._weight, label_smoothing=self._smoothing)

    def train_step(
        self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None, noise=None
    ) -> StepResult:
        if lr is not None:
            self._base_lr = lr
            for group in self.optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"] if "lr_scale" in group else lr
        x = self._runtime.to_input(images)
        y = torch.from_numpy(targets(labels, self._loss)).to(self._runtime.device, non_blocking=True)
        self._model.train()
        for module in self._frozen_norm:  # running statistics are used, not updated
            module.eval()
        self.optimizer.zero_grad(set_to_none=True)
        masks = None if noise is None else {k: torch.from_numpy(v).to(x.device) for k, v in noise.items()}
        with self._runtime.autocast(), shared_masks(masks):
            loss = self._loss_fn(self._forward(x), y)
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
        """Model, optimizer, loss-scaler and random-generator state in one file, written atomically.

        With a plan, the optimizer's parameter groups carry their names; :meth:`load_state` needs a trainer
        created with the same plan.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "model": self._model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "base_lr": self._base_lr,
            "rng": rng_state(),
        }
        tmp = folder / "torch_state.pt.tmp"
        torch.save(state, tmp)
        os.replace(tmp, folder / "torch_state.pt")
        return folder

    def load_state(self, path) -> None:
        state = torch.load(
            Path(path) / "torch_state.pt", map_location=self._runtime.device, weights_only=True
        )
        saved = [(g.get("name"), len(g["params"])) for g in state["optimizer"]["param_groups"]]
        current = [(g.get("name"), len(g["params"])) for g in self.optimizer.param_groups]
        if saved != current:
            raise MedbenchError(
                f"The training state in {path} was saved with other parameter groups ({_groups(saved)}) "
                f"than this trainer has ({_groups(current)}).",
                "Create the trainer with the fine-tuning plan that was in force when the state was saved.",
            )
        self._model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self._base_lr = state.get("base_lr", self._base_lr)
        if "rng" in state:  # states saved before the generators were kept resume with fresh dropout masks
            set_rng_state(state["rng"])


def rng_state() -> dict[str, object]:
    """Every generator a training step draws from (dropout masks, stochastic depth): torch's CPU generator
    and, where there is one, each CUDA device's. Add a generator here when a step starts drawing from it."""
    state: dict[str, object] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _groups(groups: list[tuple[str | None, int]]) -> str:
    return ", ".join(f"{name or 'all'}: {n} tensors" for name, n in groups)


def create_trainer(model: nn.Module, rt: TorchRuntime, **options) -> TorchTrainer:
    """The back-end contract's trainer (medbench.frameworks.base.TrainModule)."""
    return TorchTrainer(model, rt, **options)
