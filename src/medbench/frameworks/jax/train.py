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

Fine-tuning (:class:`~medbench.frameworks.base.TrainPlan`): the parameters are split into one state per
parameter group (selected by their PyTorch names, :func:`medbench.frameworks.jax.convert.torch_name`), the
frozen parameters and the rest (batch statistics, RNG state). Each group has its own optimizer state (its own
moments and Adam step count, as a ``torch.optim`` parameter group) and its own learning rate, ``lr x
lr_scale`` computed on the host in double precision as PyTorch does, so a group's update is exactly the
plain optimizer's at that rate, weight decay included. Gradients are taken with respect to the groups only:
frozen parameters are constants of the step, never differentiated, never touched. Without a plan there is
one group of every parameter at the step's learning rate: the same program as before plans existed.
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

from medbench.config import OptimizerConfig
from medbench.errors import ConfigError
from medbench.frameworks.base import LossName, StepResult, Trainer, TrainPlan
from medbench.frameworks.jax.convert import torch_name
from medbench.frameworks.jax.runtime import JaxRuntime
from medbench.frameworks.noise import shared_masks
from medbench.frameworks.training import check_recipe, targets


def create_optimizer(spec: OptimizerConfig) -> optax.GradientTransformation:
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


def mode_view(model: nnx.Module, *, train: bool, frozen_norm: tuple[str, ...] = ()) -> nnx.Module:
    """A view of ``model`` in training or evaluation mode (BatchNorm statistics, dropout).

    ``frozen_norm`` (module paths with PyTorch names, ``layer1.0.bn1``) are BatchNorm layers that use and
    keep their running statistics in the training view, as a PyTorch BatchNorm switched to ``eval()``.
    """
    present = {
        attr
        for _, module in nnx.iter_modules(model)
        for attr in ("use_running_average", "deterministic")
        if hasattr(module, attr)
    }
    view = nnx.view(model, **{attr: not train for attr in present}) if present else model
    if train and frozen_norm:
        frozen = set(frozen_norm)
        view = nnx.view(view, only=lambda path, _: _module_name(path) in frozen, use_running_average=True)
    return view


def _module_name(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def _objective(graphdef, loss_fn, groups, frozen, rest, x, y, noise):
    """The training-mode loss of a batch and the new non-parameter state (batch statistics, RNG)."""
    # pure arrays in, so merge makes fresh Variables in this trace, where BatchNorm may update them
    model = nnx.merge(graphdef, *groups.values(), frozen, rest)
    with shared_masks(noise):
        loss = loss_fn(model(x), y)
    return loss, nnx.as_pure(nnx.state(model, nnx.Not(nnx.Param)))


def _train_step(graphdef, tx, loss_fn, groups, frozen, rest, opt_states, x, y, lrs, noise):
    """One step over parameter groups (name -> state); ``frozen`` parameters are constants here.

    ``noise``: the step's shared dropout masks by site name (traced), or ``None`` for the module's own RNG.
    """

    def objective(g):
        return _objective(graphdef, loss_fn, g, frozen, rest, x, y, noise)

    (loss, rest), grads = jax.value_and_grad(objective, has_aux=True)(groups)
    new_groups, new_states = {}, {}
    for name, params in groups.items():
        opt_state = opt_states[name]
        opt_state.hyperparams["learning_rate"] = lrs[name]
        updates, new_states[name] = tx.update(grads[name], opt_state, params)
        new_groups[name] = optax.apply_updates(params, updates)
    return new_groups, rest, new_states, loss


def _eval_step(graphdef, groups, frozen, rest, x):
    return nnx.merge(graphdef, *groups.values(), frozen, rest)(x)


_EVERYTHING = "all"  # the one group of a trainer without a plan


class JaxTrainer(Trainer):
    def __init__(
        self,
        model: nnx.Module,
        runtime: JaxRuntime,
        *,
        optimizer: OptimizerConfig,
        loss: LossName = "cross_entropy",
        label_smoothing: float = 0.0,
        class_weights=None,
        plan: TrainPlan | None = None,
    ):
        check_recipe(loss, label_smoothing)
        self._model, self._runtime, self._loss, self._lr = model, runtime, loss, optimizer.lr
        self._tx = create_optimizer(optimizer)  # stateless: one per trainer, initialised per group
        weights = None if class_weights is None else tuple(float(w) for w in class_weights)
        self._loss_fn = partial(loss_value, loss=loss, label_smoothing=label_smoothing, class_weights=weights)
        self._eval = jax.jit(partial(_eval_step, nnx.graphdef(mode_view(model, train=False))))
        self._plan: TrainPlan | None = None
        self._opt_states: dict = {}
        self._install(plan)

    def _install(self, plan: TrainPlan | None) -> None:
        """Splits the module for ``plan`` and compiles its step; keeps the state of groups that stay."""
        members = _check_plan(self._model, plan)
        view = mode_view(self._model, train=True, frozen_norm=plan.frozen_norm if plan else ())
        filters = [_selects(names) for names, _ in members.values()]
        train_def, *groups, frozen, rest = nnx.split(view, *filters, nnx.Param, ...)
        # pure arrays (no Variable objects) travel through jit; the trained parameters are copied because the
        # step donates them, and they must not be the module's own arrays
        self._groups = {
            name: jax.tree.map(jnp.copy, nnx.as_pure(g)) for name, g in zip(members, groups, strict=True)
        }
        self._frozen, self._rest = nnx.as_pure(frozen), nnx.as_pure(rest)
        # a group of the old plan keeps its moments and step count; a new one starts as add_param_group's
        kept = {g.name for g in self._plan.groups} if self._plan else set()
        self._opt_states = {
            name: self._opt_states[name] if name in kept else self._tx.init(params)
            for name, params in self._groups.items()
        }
        self._scales = {name: scale for name, (_, scale) in members.items()}
        self._plan = plan
        self._train_def = train_def  # also read by profile.py, which times the step's parts
        step = partial(_train_step, train_def, self._tx, self._loss_fn)
        self._step = jax.jit(step, donate_argnums=(0, 3))

    def set_plan(self, plan: TrainPlan | None) -> None:
        """Switches plans between steps: same-named groups keep their optimizer state, new ones start fresh.

        The step is compiled again (other groups, other BatchNorm modes).
        """
        old = {g.name: set(g.params) for g in self._plan.groups} if self._plan else {}
        changed = [
            g.name for g in (plan.groups if plan else ()) if old.get(g.name, set(g.params)) != set(g.params)
        ]
        if changed:
            raise ConfigError(
                f"Parameter groups {changed} hold other parameters in the new plan than in the current one.",
                "Give a group with other parameters a new name, so it starts with fresh optimizer state.",
            )
        self.model  # noqa: B018  (writes the current values into the module, which _install splits again)
        self._install(plan)

    @property
    def model(self) -> nnx.Module:
        """The module with the current weights (copies: the next step donates the trainer's own buffers)."""
        trained = [jax.tree.map(jnp.copy, g) for g in self._groups.values()]
        nnx.update(self._model, *trained, self._frozen, self._rest)
        return self._model

    def train_step(
        self, images: np.ndarray, labels: np.ndarray, *, lr: float | None = None, noise=None
    ) -> StepResult:
        lr = self._lr if lr is None else lr
        # the group's rate as PyTorch's param group holds it: the product in double, then float32
        lrs = {name: np.float32(lr * scale) for name, scale in self._scales.items()}
        y = targets(labels, self._loss)
        y = y.astype(np.int32) if self._loss == "cross_entropy" else y
        self._groups, self._rest, self._opt_states, loss = self._step(
            self._groups, self._frozen, self._rest, self._opt_states, images, y, lrs, noise
        )
        return StepResult(loss=float(self._runtime.keep(loss)))

    def eval_logits(self, images: np.ndarray) -> np.ndarray:
        logits = self._eval(self._groups, self._frozen, self._rest, images)
        return np.asarray(self._runtime.keep(logits))

    def _state(self) -> tuple:
        """Everything a resumed run needs, as one pytree whose structure the plan determines.

        Without a plan its leaves are those of (parameters, batch statistics, optimizer state), in that order.
        """
        return self._groups, self._frozen, self._rest, self._opt_states

    def save_state(self, path) -> Path:
        """Parameters, batch statistics and optimizer state as the leaves of one pytree, in one npz file.

        The tree's structure comes from the trainer itself when loading (created with the plan in force when
        the state was saved), so only the arrays are stored.
        """
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        leaves = jax.tree.leaves(self._state())
        tmp = folder / "jax_state.tmp.npz"
        np.savez(tmp, *[np.asarray(_key_data(leaf)) for leaf in leaves])
        os.replace(tmp, folder / "jax_state.npz")
        return folder

    def load_state(self, path) -> None:
        leaves, treedef = jax.tree.flatten(self._state())
        with np.load(Path(path) / "jax_state.npz") as saved:
            values = [saved[f"arr_{i}"] for i in range(len(saved.files))]
        if len(values) != len(leaves) or any(
            v.shape != np.shape(_key_data(x)) for v, x in zip(values, leaves, strict=False)
        ):
            raise ConfigError(
                f"{path}: the saved training state does not fit this model and optimizer.",
                "Resume with the same model, optimizer and fine-tuning settings.",
            )
        restored = [_restore(v, x) for v, x in zip(values, leaves, strict=True)]
        self._groups, self._frozen, self._rest, self._opt_states = jax.tree.unflatten(treedef, restored)


def _check_plan(model: nnx.Module, plan: TrainPlan | None) -> dict[str, tuple[frozenset[str] | None, float]]:
    """Group name -> (PyTorch names of its parameters, lr scale); ``None`` names = every parameter.

    Raises:
        ConfigError: a name that is no parameter of the model, a parameter in two groups, two groups of one
            name, no parameter at all, or a ``frozen_norm`` path that is no BatchNorm layer.
    """
    if plan is None:
        return {_EVERYTHING: (None, 1.0)}
    known = {torch_name(path) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
    norms = {_module_name(path) for path, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)}
    names = [g.name for g in plan.groups]
    listed = [p for g in plan.groups for p in g.params]
    unknown = [p for p in listed if p not in known]
    problems = []
    if len(set(names)) != len(names):
        problems.append(f"group names repeat ({', '.join(names)})")
    if len(set(listed)) != len(listed):
        problems.append("a parameter is in more than one group")
    if unknown:
        problems.append(f"{len(unknown)} parameter(s) the model does not have, e.g. {unknown[0]!r}")
    if not listed:
        problems.append("no parameter trains")
    problems += [
        f"frozen_norm names {p!r}, which is no BatchNorm layer" for p in plan.frozen_norm if p not in norms
    ]
    if problems:
        raise ConfigError(
            f"The training plan does not fit the model: {'; '.join(problems)}.",
            "Compute the plan from this model's state_dict names (medbench.finetune.plan_for_epoch).",
        )
    return {g.name: (frozenset(g.params), float(g.lr_scale)) for g in plan.groups}


def _selects(names: frozenset[str] | None):
    """An NNX filter for the parameters with these PyTorch names (every parameter when ``None``)."""
    if names is None:
        return nnx.Param
    return nnx.All(nnx.Param, lambda path, _: torch_name(path) in names)


def _is_key(x) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", None), jax.dtypes.prng_key)


def _key_data(x):
    """Dropout's random keys are typed arrays that numpy cannot hold: store their raw bits."""
    return jax.random.key_data(x) if _is_key(x) else x


def _restore(value: np.ndarray, like):
    if _is_key(like):
        return jax.random.wrap_key_data(jnp.asarray(value), impl=jax.random.key_impl(like))
    return jnp.asarray(value, dtype=like.dtype)


def create_trainer(model: nnx.Module, rt, **options) -> JaxTrainer:
    """The back-end contract's trainer (medbench.frameworks.base.TrainModule)."""
    return JaxTrainer(model, rt, **options)
