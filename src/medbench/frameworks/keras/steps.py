"""One training step of a Keras model on each Keras backend: TensorFlow, JAX and torch.

The model, the loss and the optimizer (medbench's PyTorch-exact ``TorchSGD``/``TorchAdam``, written in
``keras.ops``) are the same on every backend; only the way gradients are taken and the step is compiled is
the backend's own, as Keras 3's own trainers do it:

- TensorFlow: ``tf.GradientTape`` inside ``tf.function`` (graph mode; with ``jit``, Keras' ``jit_compile=True``:
  XLA).
- JAX: a pure function of the variables' values under ``jax.jit``: the forward pass runs in a
  ``keras.StatelessScope`` (what ``model.stateless_call`` does), ``jax.value_and_grad`` differentiates it,
  and the optimizer's ``apply`` runs in a second scope over the optimizer's values (what
  ``optimizer.stateless_apply`` does, restricted to the variables the step trains). The new values are
  written back to the Keras variables after every step, so weights, ``save_state`` and plans stay the
  trainer's as on TensorFlow. Without ``jit`` (``jit_compile=False``) the same function runs op by op.
- torch: eager, ``loss.backward()`` through torch autograd, then ``apply`` under ``torch.no_grad()``, as
  Keras's ``TorchTrainer.train_step``. With ``jit`` the forward pass and loss run through ``torch.compile``
  (Keras compiles its whole step; here the optimizer's ``apply`` stays eager, as in medbench's torch trainer).

Each step trains ``variables`` only (a fine-tuning plan's), in the plan's order; every other model variable
(frozen parameters, BatchNorm statistics, dropout seeds) is state the forward pass may update. The step is
built again when the plan changes, since the variable lists, BatchNorm modes and learning-rate scales are
read when it is traced.

Two things every step does alike, so that they hold on all three backends:

- Shared noise (:mod:`medbench.frameworks.noise`): ``step(..., noise=masks)`` opens
  :func:`~medbench.frameworks.noise.shared_masks` around the forward pass with the step's numpy masks as the
  backend's tensors (traced values inside ``tf.function`` and ``jax.jit``), so medbench's ``Dropout`` multiplies
  by them instead of drawing its own.
- The random streams a run must restore to resume exactly (:func:`rng_state`, :func:`set_rng_state`): every
  seed generator's state variable (``model.variables`` holds them, ``save_weights`` does not; the JAX step
  carries them through the jitted function as model state), and on torch also torch's global generator,
  which Keras' unseeded dropout draws from there (``torch.nn.functional.dropout``) instead of its seed state.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from medbench.frameworks.noise import shared_masks

LossFn = Callable[[Any, Any], Any]  # (logits, targets) -> scalar float32 loss
Masks = Mapping[str, np.ndarray] | None  # site name -> the step's shared mask; None: the layers' own RNG
# the keys of torch's global generators' states beside the seed states (arr_0, ...): CPU, CUDA device i
_TORCH_RNG, _TORCH_CUDA_RNG = "torch_cpu", "torch_cuda_"


def make_step(
    backend: str, model, optimizer, variables: Sequence, loss_fn: LossFn, *, jit: bool | None = None
):
    """The step of ``backend``: ``step(images, targets, lr, noise=None) -> loss`` (a Python float), updating
    the model and the optimizer in place; ``jit`` is Keras' ``jit_compile`` (see the module docstring),
    ``None`` the backend's default (jitted on JAX only)."""
    steps = {"tensorflow": TensorFlowStep, "jax": JaxStep, "torch": TorchStep}
    options = {} if jit is None else {"jit": jit}
    return steps[backend](model, optimizer, list(variables), loss_fn, **options)


def rng_variables(model) -> list:
    """The state variable of every seed generator in the model (dropout's), in ``model.variables`` order."""
    weights = {id(v) for v in model.weights}
    return [v for v in model.variables if id(v) not in weights]


def rng_state(backend: str, model) -> dict[str, np.ndarray]:
    """Every random stream the model's training-mode forward pass draws from, as numpy arrays (an npz's
    contents): ``arr_0``, ``arr_1``, ... the seed states, plus ``torch_cpu`` (and ``torch_cuda_0``, ... once CUDA
    is in use) on the torch backend."""
    state = {f"arr_{i}": ops.convert_to_numpy(v) for i, v in enumerate(rng_variables(model))}
    if backend == "torch":
        import torch

        state[_TORCH_RNG] = torch.get_rng_state().numpy()
        if torch.cuda.is_available() and torch.cuda.is_initialized():  # as medbench's torch trainer keeps
            for i, device_state in enumerate(torch.cuda.get_rng_state_all()):
                state[f"{_TORCH_CUDA_RNG}{i}"] = device_state.numpy()
    return state


def set_rng_state(backend: str, model, saved: Mapping[str, np.ndarray], *, where: str) -> None:
    """Restores :func:`rng_state`'s arrays; ``where`` (the folder) names the file in the error.

    A state saved without ``torch_cpu`` (by the TensorFlow or JAX backend) leaves torch's generator as it is.

    Raises:
        ConfigError: the saved model has another number of seed generators than this one.
    """
    seeds = [saved[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in saved))]
    variables = rng_variables(model)
    if len(seeds) != len(variables):
        from medbench.errors import ConfigError

        raise ConfigError(
            f"{where}: the saved model has {len(seeds)} random streams, this one {len(variables)}.",
            "Resume with the same model settings.",
        )
    for variable, value in zip(variables, seeds, strict=True):
        variable.assign(value)
    if backend == "torch" and _TORCH_RNG in saved:
        import torch

        torch.set_rng_state(torch.from_numpy(np.asarray(saved[_TORCH_RNG], np.uint8)))
        cuda = [
            saved[f"{_TORCH_CUDA_RNG}{i}"] for i in range(sum(k.startswith(_TORCH_CUDA_RNG) for k in saved))
        ]
        if cuda and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([torch.from_numpy(np.asarray(c, np.uint8)) for c in cuda])


_EVALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its eval function


def make_eval(backend: str, model) -> Callable[[np.ndarray], np.ndarray]:
    """Eval-mode logits as numpy: compiled on TensorFlow (``tf.function``) and JAX (``jax.jit``).

    One per model, shared by the trainer's ``eval_logits`` and the framework's ``predict``, so a model is
    traced and compiled once (the variables' current values are passed in at each call).
    """
    if model not in _EVALS:
        _EVALS[model] = _build_eval(backend, model)
    return _EVALS[model]


def _build_eval(backend: str, model) -> Callable[[np.ndarray], np.ndarray]:
    if backend == "tensorflow":
        import tensorflow as tf

        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda images: np.asarray(forward(images))
    if backend == "jax":
        import jax

        state = list(model.variables)

        @jax.jit
        def forward(values, x):
            with keras.StatelessScope(state_mapping=list(zip(state, values, strict=True))):
                return model(x, training=False)

        return lambda images: np.asarray(forward([v.value for v in state], images))
    import torch

    def torch_forward(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():  # Keras variables require grad: without this every call records a graph
            return ops.convert_to_numpy(model(images, training=False))

    return torch_forward


class TensorFlowStep:
    """``tf.GradientTape`` in a ``tf.function``; the learning rate is a tensor, so a new value does not retrace."""

    def __init__(self, model, optimizer, variables, loss_fn: LossFn, *, jit: bool = False):
        import tensorflow as tf

        self._model, self._opt, self._variables, self._loss_fn = model, optimizer, variables, loss_fn
        self._tf = tf
        self._step = tf.function(self._train_step, reduce_retracing=True, jit_compile=jit)

    def _train_step(self, x, y, lr, noise):
        self._opt.learning_rate.assign(lr)
        with self._tf.GradientTape() as tape, shared_masks(noise):  # noise: traced masks, or None
            loss = self._loss_fn(self._model(x, training=True), y)
            scaled = self._opt.scale_loss(loss)  # fp16's loss scaling (LossScaleOptimizer); else the loss
        if self._variables:  # a plan may train nothing (BatchNorm statistics still move in training mode)
            self._opt.apply(tape.gradient(scaled, self._variables), self._variables)
        return loss

    def __call__(self, images: np.ndarray, targets: np.ndarray, lr: float, noise: Masks = None) -> float:
        # a dict of masks is traced as tensors; None (native noise) is a second trace
        return float(self._step(images, targets, self._tf.constant(lr, self._tf.float32), noise))


class JaxStep:
    """A pure function of (trained values, other model state, optimizer state, batch, lr) under ``jax.jit``."""

    def __init__(self, model, optimizer, variables, loss_fn: LossFn, *, jit: bool = True):
        import jax

        trained = {id(v) for v in variables}
        self._train = variables
        self._state = [v for v in model.variables if id(v) not in trained]
        self._opt_vars = list(optimizer.variables)
        lr_variable = optimizer._learning_rate  # a Variable for a float rate, as TorchSGD/TorchAdam get

        def forward(train_values, state_values, x, y, noise):
            mapping = list(zip(self._train, train_values, strict=True))
            mapping += list(zip(self._state, state_values, strict=True))
            with keras.StatelessScope(state_mapping=mapping) as scope, shared_masks(noise):
                loss = loss_fn(model(x, training=True), y)
            return loss, [scope.get_current_value(v) for v in self._state]

        def step(train_values, state_values, opt_values, x, y, lr, noise):
            # the seed generators' states are among state_values: native dropout advances them here
            (loss, state_values), grads = jax.value_and_grad(forward, has_aux=True)(
                train_values, state_values, x, y, noise
            )
            mapping = list(zip(self._opt_vars, opt_values, strict=True))
            mapping += [*zip(self._train, train_values, strict=True), (lr_variable, lr)]
            with keras.StatelessScope(state_mapping=mapping) as scope:
                if self._train:
                    optimizer.apply(grads, self._train)
            new_train = [scope.get_current_value(v) for v in self._train]
            return loss, new_train, state_values, [scope.get_current_value(v) for v in self._opt_vars]

        self.forward = forward  # the loss alone, for profile.py's timing of the step's parts
        self._step = jax.jit(step) if jit else step
        self._jnp = jax.numpy

    def __call__(self, images: np.ndarray, targets: np.ndarray, lr: float, noise: Masks = None) -> float:
        if targets.dtype == np.int64:  # JAX runs in 32 bits unless x64 is on; say so instead of a warning
            targets = targets.astype(np.int32)
        loss, train, state, opt = self._step(
            [v.value for v in self._train],
            [v.value for v in self._state],
            [v.value for v in self._opt_vars],
            images,
            targets,
            self._jnp.asarray(lr, self._jnp.float32),
            None if noise is None else dict(noise),  # a pytree of masks (traced), or none: the native trace
        )
        for group, values in ((self._train, train), (self._state, state), (self._opt_vars, opt)):
            for variable, value in zip(group, values, strict=True):
                variable.assign(value)
        return float(loss)


class TorchStep:
    """Eager: torch autograd for the gradients, the optimizer's ``apply`` under ``torch.no_grad()``."""

    def __init__(self, model, optimizer, variables, loss_fn: LossFn, *, jit: bool = False):
        import torch

        self._model, self._opt, self._variables, self._loss_fn = model, optimizer, variables, loss_fn
        self._torch = torch
        self._forward = torch.compile(self._forward_loss) if jit else self._forward_loss
        # Only what the step trains records gradients: a frozen parameter is a constant to autograd.
        trained = {id(v) for v in variables}
        for v in model.variables:
            v.value.requires_grad_(id(v) in trained)

    def __call__(self, images: np.ndarray, targets: np.ndarray, lr: float, noise: Masks = None) -> float:
        self._opt.learning_rate.assign(lr)
        for v in self._variables:
            v.value.grad = None
        masks = None if noise is None else {k: ops.convert_to_tensor(v) for k, v in noise.items()}
        x, y = ops.convert_to_tensor(images), ops.convert_to_tensor(targets)
        loss = self._forward(x, y, masks)
        if self._variables:
            loss.backward()
            with self._torch.no_grad():
                self._opt.apply([v.value.grad for v in self._variables], self._variables)
        return float(loss.detach())

    def _forward_loss(self, x, y, masks):
        with shared_masks(masks):
            return self._loss_fn(self._model(x, training=True), y)
