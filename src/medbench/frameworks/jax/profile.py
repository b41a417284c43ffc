"""FLOPs of a Flax model, read from JAX's own trace (see :mod:`medbench.frameworks.flops`), and where a
training step's time goes (:func:`step_breakdown`, :func:`top_operations`).

:func:`flops_per_image` walks the ``jaxpr`` of the eval-mode forward pass and counts every
``conv_general_dilated`` and ``dot_general`` at its static shapes (2 x MACs), the convention of the other
back-ends (XLA's own ``cost_analysis()`` also counts element-wise work, BatchNorm, ReLU and adds, so it is
not that convention).
"""

from __future__ import annotations

import re
import tempfile
from contextlib import contextmanager
from math import prod
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from medbench.frameworks.flops import conv_flops, matmul_flops
from medbench.frameworks.jax.train import _objective, mode_view
from medbench.frameworks.profiling import breakdown, parts_of_programs, step_rounds, timed, top_table
from medbench.frameworks.training import targets


def _forward(model: nnx.Module, image_size: int, in_channels: int):
    graphdef, state = nnx.split(mode_view(model, train=False))
    x = jnp.zeros((1, image_size, image_size, in_channels), jnp.float32)
    return (lambda s, x: nnx.merge(graphdef, s)(x)), state, x


def _sub_jaxprs(params: dict):
    for value in params.values():
        for item in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(item, jax.extend.core.ClosedJaxpr):
                yield item.jaxpr
            elif isinstance(item, jax.extend.core.Jaxpr):
                yield item


def jaxpr_flops(jaxpr) -> int:
    """2 x MACs of every convolution and matrix product in ``jaxpr`` (and in the jaxprs it calls)."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            rhs = eqn.invars[1].aval.shape
            rhs_spec = eqn.params["dimension_numbers"].rhs_spec  # (out, in, *spatial) axes of the kernel
            spatial = tuple(rhs[d] for d in rhs_spec[2:])
            total += conv_flops(eqn.outvars[0].aval.shape, spatial, rhs[rhs_spec[1]])
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            total += matmul_flops(eqn.outvars[0].aval.shape, prod(lhs[d] for d in contract))
        for sub in _sub_jaxprs(eqn.params):
            total += jaxpr_flops(sub)
    return total


def flops_per_image(model: nnx.Module, *, image_size: int, in_channels: int) -> int:
    fn, state, x = _forward(model, image_size, in_channels)
    return jaxpr_flops(jax.make_jaxpr(fn)(state, x).jaxpr)


# ---- where a training step's time goes ------------------------------------------------------------------


def _copy(tree):
    return jax.tree.map(jnp.copy, tree)


@contextmanager
def _kept(trainer):
    """The trainer's state as it was, whatever steps run inside: its step donates the parameters and the
    optimizer state, so it is handed copies, and the originals are put back afterwards."""
    groups, rest, opt_states = trainer._groups, trainer._rest, trainer._opt_states
    trainer._groups, trainer._opt_states = _copy(groups), _copy(opt_states)
    try:
        yield
    finally:
        trainer._groups, trainer._rest, trainer._opt_states = groups, rest, opt_states


def _targets(trainer, labels: np.ndarray) -> np.ndarray:
    y = targets(labels, trainer._loss)
    return y.astype(np.int32) if trainer._loss == "cross_entropy" else y  # as train_step passes them


def _parts(trainer):
    """The step's forward pass (its loss and new batch statistics) and forward + backward, jitted apart."""
    graphdef, loss_fn = trainer._train_def, trainer._loss_fn

    def forward(groups, frozen, rest, x, y, noise):
        return _objective(graphdef, loss_fn, groups, frozen, rest, x, y, noise)

    return jax.jit(forward), jax.jit(jax.value_and_grad(forward, has_aux=True))


def step_breakdown(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, repeats: int = 3):
    """Separately jitted programs, timed to completion: the batch's ``device_put`` (host to device), the
    forward pass, forward + backward, and the trainer's own step; backward = (forward + backward) - forward,
    optimizer = step - host-to-device - (forward + backward). The first round compiles and is not kept."""
    forward, forward_backward = _parts(trainer)
    y = _targets(trainer, labels)

    def one_round() -> tuple[float, ...]:
        h2d, (x, yd, masks) = timed(lambda: jax.device_put((images, y, noise)), jax.block_until_ready)
        args = (trainer._groups, trainer._frozen, trainer._rest, x, yd, masks)
        fwd, _ = timed(lambda: forward(*args), jax.block_until_ready)
        both, _ = timed(lambda: forward_backward(*args), jax.block_until_ready)
        step, _ = timed(lambda: trainer.train_step(images, labels, lr=lr, noise=noise), lambda r: None)
        return parts_of_programs(step, h2d, fwd, both)

    with _kept(trainer):
        samples = step_rounds(one_round, repeats)
    return breakdown(
        samples,
        method="jax.jit programs timed apart: device_put, forward, forward+backward (value_and_grad), the "
        "trainer's step; backward and optimizer are differences, so XLA's fusion across parts is not split",
    )


def top_operations(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, steps=3, top=10):
    """The trainer's own step under ``jax.profiler.trace``: XLA's per-operation events (``hlo_op``) of the
    step's program, summed, described from the compiled HLO (opcode, shape, forward/backward pass)."""
    with _kept(trainer):
        trainer.train_step(images, labels, lr=lr, noise=noise)  # compiled before the trace
        lrs = {name: np.float32(1e-3) for name in trainer._scales}
        compiled = trainer._step.lower(
            trainer._groups, trainer._frozen, trainer._rest, trainer._opt_states, images,
            _targets(trainer, labels), lrs, noise,
        ).compile()  # fmt: skip
        totals = traced_xla_ops(lambda: trainer.train_step(images, labels, lr=lr, noise=noise), steps)
    return xla_table(totals, compiled.as_text(), steps=steps, top=top)


def traced_xla_ops(step, steps: int) -> dict[tuple[str, str], tuple[float, int]]:
    """(HLO module, HLO op) -> (milliseconds, calls) over ``steps`` calls of ``step`` under the profiler."""
    totals: dict[tuple[str, str], list] = {}
    with tempfile.TemporaryDirectory(prefix="medbench-jax-trace-") as folder:
        with jax.profiler.trace(folder):
            for _ in range(steps):
                step()
        (path,) = Path(folder).rglob("*.xplane.pb")
        data = jax.profiler.ProfileData.from_file(str(path))
    for plane in data.planes:
        for line in plane.lines:
            for event in line.events:
                stats = dict(event.stats)
                if "hlo_op" in stats:
                    entry = totals.setdefault((stats.get("hlo_module", ""), stats["hlo_op"]), [0.0, 0])
                    entry[0] += event.duration_ns / 1e6
                    entry[1] += 1
    return {key: (ms, calls) for key, (ms, calls) in totals.items()}


def xla_table(totals, hlo_text: str, *, steps: int, top: int) -> dict:
    """:func:`~medbench.frameworks.profiling.top_table` of the events of the module ``hlo_text`` compiles."""
    module = _HLO_MODULE.match(hlo_text)
    name = module.group(1) if module else ""
    ops = {op: value for (mod, op), value in totals.items() if mod == name or not name}
    kinds, details = hlo_descriptions(hlo_text)
    return top_table(
        ops, steps=steps, top=top, profiler="jax.profiler (XLA op events)", kinds=kinds, details=details
    )


_HLO_MODULE = re.compile(r"HloModule ([\w.\-]+)")
_HLO_LINE = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = (.+?) ([a-z][\w\-]*)\((.*)$")
_COMPUTATION = re.compile(r"^(?:ENTRY )?%?([\w.\-]+) ")
_HEAVY = ("convolution", "dot", "reduce-window", "select-and-scatter", "custom-call", "scatter", "gather")


def hlo_descriptions(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """Instruction name -> kind (its opcode; a fusion also names the heavy operation inside it) and detail
    (result shape, window, and the pass: forward, backward (``transpose(jvp)``) or neither)."""
    heavy: dict[str, str] = {}  # computation -> the heaviest opcode in it
    lines, current = [], ""
    for raw in text.splitlines():
        if raw and not raw[0].isspace() and raw.rstrip().endswith("{"):
            found = _COMPUTATION.match(raw)
            current = found.group(1) if found else ""
            continue
        found = _HLO_LINE.match(raw)
        if found:
            name, shape, opcode, rest = found.groups()
            lines.append((name, shape, opcode, rest))
            if opcode in _HEAVY and current not in heavy:
                heavy[current] = opcode
    kinds, details = {}, {}
    for name, shape, opcode, rest in lines:
        called = re.search(r"calls=%?([\w.\-]+)", rest)
        inner = heavy.get(called.group(1)) if called and opcode == "fusion" else None
        kinds[name] = f"fusion({inner})" if inner else opcode
        window = re.search(r"window=\{([^}]*)\}", rest)
        op_name = re.search(r'op_name="([^"]*)"', rest)
        where = op_name.group(1) if op_name else ""
        phase = "backward" if "transpose(" in where else "forward" if "jvp(" in where else ""
        shown = shape if len(shape) <= 60 else shape[:57] + "..."
        details[name] = " ".join(
            p for p in (shown, f"window {window.group(1)}" if window else "", phase) if p
        )
    return kinds, details
