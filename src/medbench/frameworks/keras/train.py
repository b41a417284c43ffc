"""The Keras trainer: a custom ``tf.function`` train step (not ``model.fit``), so the caller owns the batches.

Keras' own optimizers differ from ``torch.optim`` in ways that change the weights: ``keras.optimizers.SGD``
folds the learning rate into the momentum buffer (``v = m*v - lr*g``), which differs as soon as the
learning rate changes, and applies ``weight_decay`` decoupled rather than as L2; ``keras.optimizers.Adam``
puts epsilon on the un-corrected second moment (``eps_hat``). :class:`TorchSGD` and :class:`TorchAdam` are
``keras.optimizers.Optimizer`` subclasses that apply PyTorch's formulas exactly (``keras.ops`` only), so
weights match after every step. fp16 wraps them in ``LossScaleOptimizer``.
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import numpy as np
from keras import ops

from medbench.errors import ConfigError
from medbench.frameworks.base import LossName, OptimizerSpec, StepResult, Trainer
from medbench.frameworks.keras.runtime import KerasRuntime
from medbench.frameworks.training import check_recipe, targets


class TorchSGD(keras.optimizers.Optimizer):
    """``torch.optim.SGD``: ``g += wd*w; buf = m*buf + g; w -= lr * (g + m*buf if nesterov else buf)``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, name="torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov, self.l2 = float(momentum), bool(nesterov), float(l2)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if self.l2:
            g = g + self.l2 * variable
        if self.momentum:
            buf = self._buffers[self._get_variable_index(variable)]
            self.assign(buf, self.momentum * buf + g)  # buf starts at 0, so step 1 gives buf = g, as PyTorch
            g = g + self.momentum * buf if self.nesterov else buf
        self.assign_sub(variable, lr * g)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov, "l2": self.l2}


class TorchAdam(keras.optimizers.Optimizer):
    """``torch.optim.Adam`` (``l2``: weight decay into the gradient) or ``AdamW`` (``decoupled`` decay).

    ``w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, eps outside the corrected root.
    """

    def __init__(
        self,
        learning_rate=1e-3,
        beta_1=0.9,
        beta_2=0.999,
        eps=1e-8,
        l2=0.0,
        decoupled=0.0,
        name="torch_adam",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta_1, self.beta_2, self.eps = float(beta_1), float(beta_2), float(eps)
        self.l2, self.decoupled = float(l2), float(decoupled)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._m, self._v = self.add_optimizer_variables(variables, ["exp_avg", "exp_avg_sq"])

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        if self.decoupled:
            self.assign(variable, variable * (1.0 - lr * self.decoupled))
        if self.l2:
            g = g + self.l2 * variable
        i = self._get_variable_index(variable)
        m, v = self._m[i], self._v[i]
        self.assign(m, m + (1.0 - self.beta_1) * (g - m))  # PyTorch's lerp_
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * g * g)
        step_size = lr / (1.0 - ops.power(self.beta_1, t))
        denom = ops.sqrt(v) / ops.sqrt(1.0 - ops.power(self.beta_2, t)) + self.eps
        self.assign_sub(variable, step_size * m / denom)

    def get_config(self):
        extra = {"beta_1": self.beta_1, "beta_2": self.beta_2, "eps": self.eps, "l2": self.l2}
        return {**super().get_config(), **extra, "decoupled": self.decoupled}


def create_optimizer(spec: OptimizerSpec) -> keras.optimizers.Optimizer:
    if spec.name == "sgd":
        return TorchSGD(spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, l2=spec.weight_decay)
    b1, b2 = spec.betas
    decay = {"decoupled": spec.weight_decay} if spec.name == "adamw" else {"l2": spec.weight_decay}
    return TorchAdam(spec.lr, beta_1=b1, beta_2=b2, eps=spec.eps, **decay)


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
        optimizer: OptimizerSpec,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
    ):
        check_recipe(optimizer, loss, label_smoothing)
        self._class_weights = None if class_weights is None else [float(w) for w in class_weights]
        if runtime.backend != "tensorflow":
            raise ConfigError(
                f"The Keras trainer runs on the TensorFlow backend, not {runtime.backend!r}.",
                "Unset KERAS_BACKEND (or set it to tensorflow) for training.",
            )
        import tensorflow as tf

        self._model, self._loss, self._smoothing, self._lr = model, loss, label_smoothing, optimizer.lr
        opt = create_optimizer(optimizer)
        if runtime.settings.precision == "fp16":  # fp16 gradients underflow without loss scaling
            opt = keras.optimizers.LossScaleOptimizer(opt)
        opt.build(model.trainable_variables)
        self.optimizer = opt
        self._step = tf.function(self._train_step, reduce_retracing=True)
        self._eval = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    @property
    def model(self) -> keras.Model:
        return self._model

    def _train_step(self, x, y, lr):
        import tensorflow as tf

        self.optimizer.learning_rate.assign(lr)
        variables = self._model.trainable_variables
        with tf.GradientTape() as tape:
            logits = self._model(x, training=True)
            loss = loss_value(
                logits, y, loss=self._loss, label_smoothing=self._smoothing, class_weights=self._class_weights
            )
            scaled = self.optimizer.scale_loss(loss)
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    def train_step(self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None) -> StepResult:
        import tensorflow as tf

        lr = tf.constant(self._lr if lr is None else lr, tf.float32)  # a tensor: a new value does not retrace
        loss = self._step(images, targets(labels, self._loss), lr)
        return StepResult(loss=float(loss))

    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._eval(images))

    def save_state(self, path) -> Path:
        """Model weights (``.weights.h5``) and every optimizer variable (npz, in creation order)."""
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        self._model.save_weights(folder / "keras_model.weights.h5")
        tmp = folder / "keras_optimizer.tmp.npz"
        np.savez(tmp, *[np.asarray(v) for v in self.optimizer.variables])
        os.replace(tmp, folder / "keras_optimizer.npz")
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
