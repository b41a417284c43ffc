"""The JAX trainer: one ``jax.jit``-compiled step over split NNX state, optax with PyTorch's semantics.

The model is split once (``nnx.split``) into a static graph and its state; the jitted step merges them
inside the trace, so each call costs one dispatch and no Python traversal of the module (``nnx.jit`` would
walk the graph on every call). The updated state lives in the trainer and is written back to the module
when :attr:`JaxTrainer.model` is read.

Optimizers match ``torch.optim``: SGD = ``add_decayed_weights`` (L2 into the gradient) + ``optax.sgd``
(whose trace is PyTorch's momentum buffer, Nesterov included); Adam = ``add_decayed_weights`` +
``optax.adam`` (eps outside the square root of the bias-corrected second moment, as PyTorch); AdamW =
``optax.adamw`` (decoupled decay, ``-lr * wd * w``). ``inject_hyperparams`` makes the learning rate a
traced value, so changing it per step does not recompile.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from medbench.frameworks.base import LossName, OptimizerSpec, StepResult, Trainer
from medbench.frameworks.jax.runtime import JaxRuntime
from medbench.frameworks.training import check_recipe, targets


def create_optimizer(spec: OptimizerSpec) -> optax.GradientTransformation:
    def make(learning_rate):
        b1, b2 = spec.betas
        if spec.name == "adamw":
            return optax.adamw(learning_rate, b1=b1, b2=b2, eps=spec.eps, weight_decay=spec.weight_decay)
        if spec.name == "adam":
            update = optax.adam(learning_rate, b1=b1, b2=b2, eps=spec.eps)
        else:
            update = optax.sgd(learning_rate, momentum=spec.momentum or None, nesterov=spec.nesterov)
        if spec.weight_decay:
            return optax.chain(optax.add_decayed_weights(spec.weight_decay), update)
        return update

    return optax.inject_hyperparams(make)(learning_rate=spec.lr)


def loss_value(logits, y, *, loss: LossName, label_smoothing: float):
    """PyTorch's mean cross-entropy (with label smoothing) or mean BCE-with-logits, in float32."""
    logits = logits.astype(jnp.float32)
    if loss == "bce_with_logits":
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)
    return nll.mean()


def mode_view(model: nnx.Module, *, train: bool) -> nnx.Module:
    """A view of ``model`` in training or evaluation mode (BatchNorm statistics, dropout)."""
    present = {
        attr
        for _, module in nnx.iter_modules(model)
        for attr in ("use_running_average", "deterministic")
        if hasattr(module, attr)
    }
    return nnx.view(model, **{attr: not train for attr in present}) if present else model


def _train_step(graphdef, tx, loss_fn, params, rest, opt_state, x, y, lr):
    def objective(p):
        # pure arrays in, so merge makes fresh Variables in this trace, where BatchNorm may update them
        model = nnx.merge(graphdef, p, rest)
        loss = loss_fn(model(x), y)
        return loss, nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))

    (loss, rest), grads = jax.value_and_grad(objective, has_aux=True)(params)
    opt_state.hyperparams["learning_rate"] = lr
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), rest, opt_state, loss


def _eval_step(graphdef, params, rest, x):
    return nnx.merge(graphdef, params, rest)(x)


class JaxTrainer(Trainer):
    def __init__(
        self,
        model: nnx.Module,
        runtime: JaxRuntime,
        *,
        optimizer: OptimizerSpec,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
    ):
        check_recipe(optimizer, loss, label_smoothing)
        self._model, self._runtime, self._loss, self._lr = model, runtime, loss, optimizer.lr
        train_def, params, rest = nnx.split(mode_view(model, train=True), nnx.Param, ...)
        eval_def = nnx.graphdef(mode_view(model, train=False))
        # pure arrays (no Variable objects) travel through jit; the parameters are copied because the step
        # donates them, and they must not be the module's own arrays
        self._params = jax.tree.map(jnp.copy, nnx.as_pure(params))
        self._rest = nnx.as_pure(rest)
        tx = create_optimizer(optimizer)
        self._opt_state = tx.init(self._params)
        loss_fn = partial(loss_value, loss=loss, label_smoothing=label_smoothing)
        self._step = jax.jit(partial(_train_step, train_def, tx, loss_fn), donate_argnums=(0, 2))
        self._eval = jax.jit(partial(_eval_step, eval_def))

    @property
    def model(self) -> nnx.Module:
        """The module with the current weights (copies: the next step donates the trainer's own buffers)."""
        nnx.update(self._model, jax.tree.map(jnp.copy, self._params), self._rest)
        return self._model

    def train_step(self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None) -> StepResult:
        lr = jnp.asarray(self._lr if lr is None else lr, dtype=jnp.float32)
        y = targets(labels, self._loss)
        y = y.astype(np.int32) if self._loss == "cross_entropy" else y
        self._params, self._rest, self._opt_state, loss = self._step(
            self._params, self._rest, self._opt_state, images, y, lr
        )
        return StepResult(loss=float(self._runtime.keep(loss)))

    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        return np.asarray(self._runtime.keep(self._eval(self._params, self._rest, images)))
