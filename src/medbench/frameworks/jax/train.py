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

import os
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from medbench.errors import ConfigError
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


def loss_value(logits, y, *, loss: LossName, label_smoothing: float, class_weights=None):
    """PyTorch's mean cross-entropy (with label smoothing and class weights) or mean BCE-with-logits, in float32.

    With class weights PyTorch's "mean" is a weighted mean: the sum of weighted losses over the sum of the
    weights of the targets, and the smoothing term is weighted per class too.
    """
    logits = logits.astype(jnp.float32)
    if loss == "bce_with_logits":
        return optax.sigmoid_binary_cross_entropy(logits, y).mean()
    logp = jax.nn.log_softmax(logits)
    nll = -jnp.take_along_axis(logp, y[:, None], axis=-1)[:, 0]
    if class_weights is None:
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * logp.mean(axis=-1)
        return nll.mean()
    w = jnp.asarray(class_weights, jnp.float32)
    wy = w[y]
    smooth = -(logp * w).sum(axis=-1) / logp.shape[-1]
    return ((1.0 - label_smoothing) * wy * nll + label_smoothing * smooth).sum() / wy.sum()


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
        class_weights=None,
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
        weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        loss_fn = partial(loss_value, loss=loss, label_smoothing=label_smoothing, class_weights=weights)
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

    def save_state(self, path) -> Path:
        """Parameters, batch statistics and optimizer state as the leaves of one pytree, in one npz file.

        The tree's structure comes from the trainer itself when loading, so only the arrays are stored.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        leaves = jax.tree.leaves((self._params, self._rest, self._opt_state))
        tmp = folder / "jax_state.tmp.npz"
        np.savez(tmp, *[np.asarray(_key_data(leaf)) for leaf in leaves])
        os.replace(tmp, folder / "jax_state.npz")
        return folder

    def load_state(self, path) -> None:
        current = (self._params, self._rest, self._opt_state)
        leaves, treedef = jax.tree.flatten(current)
        with np.load(Path(path) / "jax_state.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(leaves) or any(
            v.shape != np.shape(_key_data(x)) for v, x in zip(values, leaves, strict=False)
        ):
            raise ConfigError(
                f"{path}: the saved training state does not fit this model and optimizer.",
                "Resume with the same model and optimizer settings.",
            )
        restored = [_restore(v, x) for v, x in zip(values, leaves, strict=True)]
        self._params, self._rest, self._opt_state = jax.tree.unflatten(treedef, restored)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def _key_data(x):
    """Dropout's random keys are typed arrays that numpy cannot hold: store their raw bits."""
    return jax.random.key_data(x) if _is_key(x) else x


def _restore(value: np.ndarray, like):
    if _is_key(like):
        return jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(like))
    return jnp.asarray(value, dtype=like.dtype)
