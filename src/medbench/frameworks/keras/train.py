"""The Keras trainer on every Keras backend: a custom train step (not ``model.fit``), so the caller owns the
batches. The step is the backend's own (``tf.function`` with a gradient tape, ``jax.jit`` over stateless values,
torch autograd; see :mod:`medbench.frameworks.keras.steps`); the model, loss and optimizers are one code.

The optimizers are PyTorch's formulas as Keras optimizers (:mod:`medbench.frameworks.keras.optimizers`), so
weights match ``torch.optim`` after every step. fp16 wraps them in ``LossScaleOptimizer`` (TensorFlow backend
only). ``runtime.compile`` is Keras' ``jit_compile`` on every backend (:mod:`medbench.frameworks.keras.steps`).

Fine-tuning (:class:`~medbench.frameworks.base.TrainPlan`): PyTorch's parameter groups on top of Keras' one
learning rate. The optimizer is built once over every parameter that could ever train, so its variables (and
the saved state) do not depend on the plan; each step differentiates and updates only the plan's variables,
each at ``lr x lr_scale``, and Adam counts steps per variable (PyTorch's per-parameter ``step``), so a group
that joins later starts its bias correction at step 1. Frozen BatchNorm layers get ``trainable = False``,
Keras' rule for running a BatchNorm in inference mode (medbench's :class:`BatchNorm` checks it too).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import keras
import numpy as np
from keras import ops

from medbench.config import OptimizerConfig
from medbench.errors import ConfigError
from medbench.finetune import BUFFER_SUFFIXES
from medbench.frameworks import settings as catalog
from medbench.frameworks.base import LossName, StepResult, Trainer, TrainPlan
from medbench.frameworks.keras.convert import weights_by_torch_name
from medbench.frameworks.keras.layers import torch_path
from medbench.frameworks.keras.optimizers import TorchOptimizer, create_optimizer
from medbench.frameworks.keras.runtime import FRAMEWORK_OF_BACKEND, KerasRuntime
from medbench.frameworks.keras.steps import make_eval, make_step, rng_state, set_rng_state
from medbench.frameworks.training import check_recipe, targets


def loss_value(logits, y, *, loss: LossName, label_smoothing: float, class_weights=None):
    """PyTorch's mean cross-entropy (with label smoothing and class weights) or mean BCE-with-logits, in float32.

    With class weights PyTorch's "mean" is a weighted mean (see the JAX trainer's ``loss_value``).
    """
    logits = ops.cast(logits, "float32")
    if loss == "bce_with_logits":
        # the stable form PyTorch uses: max(x, 0) - x*y + log(1 + exp(-|x|))
        per = ops.relu(logits) - logits * y + ops.log1p(ops.exp(-ops.abs(logits)))
        return ops.mean(per)
    logp = ops.log_softmax(logits, axis=-1)
    nll = -ops.take_along_axis(logp, ops.expand_dims(y, -1), axis=-1)[:, 0]
    if class_weights is not None:
        w = ops.convert_to_tensor(class_weights, "float32")
        wy = ops.take(w, y)
        smooth = -ops.sum(logp * w, axis=-1) / ops.shape(logp)[-1]
        return ops.sum((1.0 - label_smoothing) * wy * nll + label_smoothing * smooth) / ops.sum(wy)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(logp, axis=-1)
    return ops.mean(nll)


class KerasTrainer(Trainer):
    def __init__(
        self,
        model: keras.Model,
        runtime: KerasRuntime,
        *,
        optimizer: OptimizerConfig,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
        plan: TrainPlan | None = None,
    ):
        check_recipe(loss, label_smoothing)
        self._class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self._backend = runtime.backend
        # Keras' jit_compile for this backend: runtime.compile, or the backend's default when unset
        self._jit = catalog.check_compile(runtime.settings.compile, FRAMEWORK_OF_BACKEND[runtime.backend])
        if runtime.settings.precision == "fp16" and self._backend != "tensorflow":
            # Keras' LossScaleOptimizer has no stateless form that trains a plan's subset of variables
            raise ConfigError(
                f"fp16 training (loss scaling) is supported on Keras' TensorFlow backend, not {self._backend!r}.",
                "Use runtime.precision = 'bf16' (no loss scaling needed) or the keras framework.",
            )
        self._model, self._loss, self._smoothing, self._lr = model, loss, label_smoothing, optimizer.lr
        # PyTorch name -> variable of every parameter (running statistics are no parameters)
        self._params = {
            key: var
            for key, (var, _) in weights_by_torch_name(model).items()
            if not key.endswith(BUFFER_SUFFIXES)
        }
        self._norms = {
            torch_path(layer.name): layer
            for layer in _leaf_layers(model)
            if isinstance(layer, keras.layers.BatchNormalization)
        }
        opt = create_optimizer(optimizer)
        if runtime.settings.precision == "fp16":  # fp16 gradients underflow without loss scaling
            opt = keras.optimizers.LossScaleOptimizer(opt)
        # with a plan: state for every parameter that any later plan may train, so the optimizer's variables
        # (and what save_state writes) are the same whichever plan is in force
        opt.build(model.trainable_variables if plan is None else list(self._params.values()))
        self.optimizer = opt
        self._plan: TrainPlan | None = None
        self._variables: list[keras.Variable] | None = None  # what a step trains; None: trainable_variables
        if plan is not None:
            self._use_plan(plan)
        self._step = self._make_step()
        self._eval = make_eval(self._backend, model)

    @property
    def model(self) -> keras.Model:
        return self._model

    @property
    def _torch_optimizer(self) -> TorchOptimizer:
        return getattr(self.optimizer, "inner_optimizer", self.optimizer)  # under a LossScaleOptimizer

    def set_plan(self, plan: TrainPlan) -> None:
        self._use_plan(plan)
        # BatchNorm's mode, the variable list and the learning-rate scales are read when the step is traced
        self._step = self._make_step()

    def _make_step(self):
        variables = self._model.trainable_variables if self._variables is None else self._variables
        return make_step(self._backend, self._model, self.optimizer, variables, self._loss_of, jit=self._jit)

    def _loss_of(self, logits, y):
        return loss_value(
            logits, y, loss=self._loss, label_smoothing=self._smoothing, class_weights=self._class_weights
        )

    def _use_plan(self, plan: TrainPlan) -> None:
        """Checks ``plan`` against the model and the previous plan, then makes it the one in force."""
        old = {} if self._plan is None else {g.name: g for g in self._plan.groups}
        _check_plan(plan, self._params, self._norms, old)
        groups = plan.groups
        opt = self._torch_optimizer
        known = {id(v) for v in opt._trainable_variables}
        untracked = [n for g in groups for n in g.params if id(self._params[n]) not in known]
        if untracked:
            raise ConfigError(
                f"The plan trains {untracked[:3]} ({len(untracked)} in all), which the optimizer does not track.",
                "Create the trainer with a plan (create_trainer(plan=...)) to change plans later.",
            )
        # new groups start as PyTorch's add_param_group: zero moments and buffers, Adam step 0
        opt.reset(self._params[n] for g in groups if g.name not in old for n in g.params)
        opt.set_lr_scales((self._params[n], g.lr_scale) for g in groups for n in g.params)
        frozen_norm = set(plan.frozen_norm)
        for path, layer in self._norms.items():  # Keras' rule: a frozen BatchNorm runs in inference mode
            layer.trainable = path not in frozen_norm
        trainable = plan.trainable
        for name, variable in self._params.items():  # model.trainable_weights shows what the plan trains
            variable.trainable = name in trainable
        self._variables = [self._params[n] for g in groups for n in g.params]
        self._plan = plan

    def train_step(
        self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None, noise=None
    ) -> StepResult:
        """One step; ``noise``: the step's shared dropout masks (site name -> numpy array), or ``None``."""
        loss = self._step(images, targets(labels, self._loss), self._lr if lr is None else lr, noise)
        return StepResult(loss=loss)

    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        return self._eval(images)

    def save_state(self, path) -> Path:
        """Model weights (``.weights.h5``), every optimizer variable and the random streams (npz files, in
        creation order)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._model.save_weights(folder / "keras_model.weights.h5")
        optimizer = {f"arr_{i}": ops.convert_to_numpy(v) for i, v in enumerate(self.optimizer.variables)}
        rng = rng_state(self._backend, self._model)  # seed generators (and torch's generator on torch)
        for name, arrays in (("keras_optimizer", optimizer), ("keras_rng", rng)):
            tmp = folder / f"{name}.tmp.npz"
            np.savez(tmp, **arrays)
            os.replace(tmp, folder / f"{name}.npz")
        return folder

    def load_state(self, path) -> None:
        folder = Path(path)
        self._model.load_weights(folder / "keras_model.weights.h5")
        with np.load(folder / "keras_optimizer.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(self.optimizer.variables):
            raise ConfigError(
                f"{folder}: the saved optimizer has {len(values)} variables, this one {len(self.optimizer.variables)}.",
                "Resume with the same model and optimizer settings.",
            )
        for variable, value in zip(self.optimizer.variables, values, strict=True):
            variable.assign(value)
        rng_file = folder / "keras_rng.npz"
        if rng_file.exists():  # states saved before the seeds were kept resume with fresh dropout masks
            with np.load(rng_file) as saved:
                set_rng_state(self._backend, self._model, dict(saved), where=str(folder))


def _leaf_layers(model: keras.Model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def _check_plan(plan: TrainPlan, params: Mapping, norms: Mapping, old: Mapping) -> None:
    """Checks ``plan`` against the model's parameters and BatchNorm layers (by PyTorch name), and against the
    groups of the previous plan (``old``: name -> group), whose names must keep their parameters."""
    names = [n for g in plan.groups for n in g.params]
    unknown = [n for n in names if n not in params]
    if unknown:
        raise ConfigError(
            f"The training plan names {unknown[:3]} ({len(unknown)} in all), which are no parameters of the model.",
            "Build the plan from this model's state_dict names (medbench.finetune.plan_for_epoch).",
        )
    twice = sorted(n for n, count in Counter(names).items() if count > 1)
    if twice:
        raise ConfigError(
            f"The training plan puts {twice[:3]} in more than one group.", "Use one group each."
        )
    not_norm = [m for m in plan.frozen_norm if m not in norms]
    if not_norm:
        raise ConfigError(
            f"The training plan freezes {not_norm[:3]} as BatchNorm layers, which the model does not have.",
            "frozen_norm takes BatchNorm module paths such as 'layer1.0.bn1'.",
        )
    # optimizer state belongs to a group's parameters; a new lr_scale is fine (PyTorch's group dict takes it)
    changed = [g.name for g in plan.groups if g.name in old and set(old[g.name].params) != set(g.params)]
    if changed:
        raise ConfigError(
            f"The training plan gives the groups {changed} other parameters than the current plan does.",
            "Give a group with other parameters a new name, so it starts with fresh optimizer state.",
        )


def create_trainer(model, rt, **options) -> KerasTrainer:
    """The back-end contract's trainer (medbench.frameworks.base.TrainModule)."""
    return KerasTrainer(model, rt, **options)
