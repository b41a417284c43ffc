"""PyTorch's optimizers as Keras optimizers, in ``keras.ops`` only, so they run on every Keras backend.

Keras' own optimizers differ from ``torch.optim`` in ways that change the weights: ``keras.optimizers.SGD``
folds the learning rate into the momentum buffer (``v = m*v - lr*g``), which differs as soon as the
learning rate changes, and applies ``weight_decay`` decoupled rather than as L2; ``keras.optimizers.Adam``
puts epsilon on the un-corrected second moment (``eps_hat``). :class:`TorchSGD` and :class:`TorchAdam` are
``keras.optimizers.Optimizer`` subclasses that apply PyTorch's formulas exactly, so weights match after every
step. :class:`TorchOptimizer` adds PyTorch's parameter groups (per-variable learning-rate scales, fresh state
for a group that joins later); the trainer (:mod:`medbench.frameworks.keras.train`) uses them for plans.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
import numpy as np
from keras import ops

from medbench.config import OptimizerConfig


class TorchOptimizer(keras.optimizers.Optimizer):
    """What :class:`TorchSGD` and :class:`TorchAdam` share: PyTorch's parameter groups.

    ``apply`` updates only the variables it is given; the others keep their values and their state, so the
    optimizer may be built over more variables than one step trains. :meth:`set_lr_scales` gives variables a
    learning-rate multiplier (a group's ``lr_scale``) and :meth:`reset` fresh state (a group that joins by
    ``add_param_group``). The scales are read when a step is traced: trace the step again after changing them.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lr_scales: tuple[float, ...] = ()  # per variable index; empty: 1 for every variable

    def set_lr_scales(self, scales: Iterable[tuple[keras.Variable, float]]) -> None:
        """Learning-rate multipliers of (variable, scale) pairs; every other variable gets 1."""
        by_index = [1.0] * len(self._trainable_variables)
        for variable, scale in scales:
            by_index[self._get_variable_index(variable)] = float(scale)
        self._lr_scales = tuple(by_index) if any(s != 1.0 for s in by_index) else ()

    def reset(self, variables: Iterable[keras.Variable]) -> None:
        """Fresh state (zero moments or buffers, step 0) for ``variables``, as new PyTorch parameters."""
        indices = [self._get_variable_index(v) for v in variables]
        for slots in self._state_slots():
            for i in indices:
                slots[i].assign(ops.zeros(slots[i].shape, slots[i].dtype))

    def _state_slots(self) -> list[list[keras.Variable]]:
        """The per-variable state lists, each indexed as the variables the optimizer was built with."""
        return []

    def _lr(self, learning_rate, variable):
        """The variable's learning rate: the step's times its group's scale (PyTorch's group ``lr``).

        The product is taken in float32 of the float32 step rate, where PyTorch rounds the double product
        once: at most an ulp of the rate apart, far below the rounding noise of the gradients.
        """
        lr = ops.cast(learning_rate, variable.dtype)
        scale = self._lr_scales[self._get_variable_index(variable)] if self._lr_scales else 1.0
        return lr if scale == 1.0 else lr * scale  # no multiply by 1: a plan-free step stays bit-identical


class TorchSGD(TorchOptimizer):
    """``torch.optim.SGD``: ``g += wd*w; buf = m*buf + g; w -= lr * (g + m*buf if nesterov else buf)``."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, l2=0.0, name="torch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.momentum, self.nesterov, self.l2 = float(momentum), bool(nesterov), float(l2)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self._buffers = self.add_optimizer_variables(variables, "momentum_buffer") if self.momentum else []

    def _state_slots(self):
        return [self._buffers] if self.momentum else []  # plain SGD keeps no state

    def update_step(self, gradient, variable, learning_rate):
        lr = self._lr(learning_rate, variable)
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


class TorchAdam(TorchOptimizer):
    """``torch.optim.Adam`` (``l2``: weight decay into the gradient) or ``AdamW`` (``decoupled`` decay).

    ``w -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)``, eps outside the corrected root. ``t``
    is the variable's own step count (PyTorch's per-parameter ``state["step"]``), not the optimizer's
    ``iterations``: the two differ for a variable that joined training later (:meth:`reset`).
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
        # one vector for all variables: a single increment per step instead of one per variable
        self._steps = self.add_variable((len(variables),), dtype="int", name="step")

    def _state_slots(self):
        return [self._m, self._v]

    def reset(self, variables):
        variables = list(variables)
        super().reset(variables)
        steps = ops.convert_to_numpy(self._steps).copy()
        steps[[self._get_variable_index(v) for v in variables]] = 0
        self._steps.assign(steps)

    def apply(self, grads, trainable_variables=None):
        """Keras' ``apply``, then one more step for each variable that had a gradient (and was updated)."""
        super().apply(grads, trainable_variables)
        variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
        stepped = np.zeros(len(self._trainable_variables), self._steps.dtype)
        for grad, variable in zip(grads, variables, strict=True):
            if grad is not None:
                stepped[self._get_variable_index(variable)] = 1
        if stepped.any():
            self._steps.assign_add(stepped)  # after the updates, which read the count before it

    def update_step(self, gradient, variable, learning_rate):
        lr = self._lr(learning_rate, variable)
        g = ops.cast(gradient, variable.dtype)
        i = self._get_variable_index(variable)
        t = ops.cast(self._steps[i] + 1, variable.dtype)
        if self.decoupled:
            self.assign(variable, variable * (1.0 - lr * self.decoupled))
        if self.l2:
            g = g + self.l2 * variable
        m, v = self._m[i], self._v[i]
        self.assign(m, m + (1.0 - self.beta_1) * (g - m))  # PyTorch's lerp_
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * g * g)
        step_size = lr / (1.0 - ops.power(self.beta_1, t))
        denom = ops.sqrt(v) / ops.sqrt(1.0 - ops.power(self.beta_2, t)) + self.eps
        self.assign_sub(variable, step_size * m / denom)

    def get_config(self):
        extra = {"beta_1": self.beta_1, "beta_2": self.beta_2, "eps": self.eps, "l2": self.l2}
        return {**super().get_config(), **extra, "decoupled": self.decoupled}


def create_optimizer(spec: OptimizerConfig) -> keras.optimizers.Optimizer:
    if spec.name == "sgd":
        return TorchSGD(spec.lr, momentum=spec.momentum, nesterov=spec.nesterov, l2=spec.weight_decay)
    b1, b2 = spec.betas
    decay = {"decoupled": spec.weight_decay} if spec.name == "adamw" else {"l2": spec.weight_decay}
    return TorchAdam(spec.lr, beta_1=b1, beta_2=b2, eps=spec.eps, **decay)
