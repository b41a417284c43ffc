"""FLOPs of a Keras model, counted on its backend's own trace (see :mod:`medbench.frameworks.flops`).

On JAX and torch the count is the one medbench's JAX and PyTorch back-ends make (the jaxpr's convolutions
and matrix products; ``torch.utils.flop_counter``), over the Keras model's eval-mode call. On TensorFlow:

The eval-mode forward pass of one image is traced with ``tf.function`` into a concrete function, and every
``Conv2D``, ``DepthwiseConv2dNative`` and ``MatMul``/``BatchMatMul`` op of its graph is counted at its
static shapes (2 x MACs), the convention of the other back-ends. TensorFlow's own profiler
(``tf.compat.v1.profiler``) was not used for the figure: it also counts element-wise ops, and only for op
types that register statistics, so its total depends on how Keras lowered each layer.

Where a training step's time goes (:func:`step_breakdown`, :func:`top_operations`) is measured per backend,
as each section below says.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import keras
import numpy as np
from keras import ops

from medbench.errors import ConfigError
from medbench.frameworks.flops import conv_flops, matmul_flops
from medbench.frameworks.keras.steps import rng_state, set_rng_state
from medbench.frameworks.noise import shared_masks
from medbench.frameworks.profiling import breakdown, parts_of_programs, step_rounds, timed, top_table
from medbench.frameworks.training import targets


def _op_flops(op) -> int:
    def shape(t):
        return tuple(int(d) for d in t.shape)

    if op.type in ("Conv2D", "DepthwiseConv2dNative"):
        kh, kw, cin, _ = shape(op.inputs[1])  # HWIO, or (kh, kw, C, multiplier) for depthwise
        in_per_group = 1 if op.type == "DepthwiseConv2dNative" else cin
        return conv_flops(shape(op.outputs[0]), (kh, kw), in_per_group)
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        a = shape(op.inputs[0])
        transpose = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
        return matmul_flops(shape(op.outputs[0]), a[-2] if transpose else a[-1])
    return 0


def _jax_flops(model: keras.Model, x: np.ndarray) -> int:
    import jax

    from medbench.frameworks.jax.profile import jaxpr_flops

    state = list(model.variables)

    def forward(values, x):
        with keras.StatelessScope(state_mapping=list(zip(state, values, strict=True))):
            return model(x, training=False)

    return jaxpr_flops(jax.make_jaxpr(forward)([v.value for v in state], x).jaxpr)


def _torch_flops(model: keras.Model, x: np.ndarray) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x, training=False)
    return int(counter.get_total_flops())


def flops_per_image(model: keras.Model, *, image_size: int, in_channels: int) -> int:
    backend = keras.backend.backend()
    if backend in ("jax", "torch"):
        x = np.zeros((1, image_size, image_size, in_channels), np.float32)
        return (_jax_flops if backend == "jax" else _torch_flops)(model, x)
    if backend != "tensorflow":
        raise ConfigError(f"Keras FLOPs are not counted on the {backend!r} backend.")
    import tensorflow as tf

    spec = tf.TensorSpec((1, image_size, image_size, in_channels), tf.float32)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    return sum(_op_flops(op) for op in graph.get_operations())


# ---- where a training step's time goes ------------------------------------------------------------------
# Each backend its own way: TensorFlow and JAX as compiled programs timed apart (forward, forward + gradients,
# the trainer's step), differences giving backward and optimizer; torch eagerly, a synchronised clock around
# each phase, as medbench's PyTorch back-end. The state a step changes is put back afterwards.


@contextmanager
def _kept(trainer) -> Iterator[None]:
    """Every model and optimizer variable (weights, BatchNorm statistics, seed states, moments, step
    counts) and torch's generator as they were; torch's gradients dropped."""
    backend = keras.backend.backend()
    variables = [*trainer.model.variables, *trainer.optimizer.variables]
    values = [np.array(ops.convert_to_numpy(v)) for v in variables]
    generators = rng_state(backend, trainer.model)
    try:
        yield
    finally:
        for variable, value in zip(variables, values, strict=True):
            variable.assign(value)
        set_rng_state(backend, trainer.model, generators, where="the profiled step")
        if backend == "torch":
            for variable in trainer.model.variables:
                variable.value.grad = None


def _loss_parts(trainer, backend: str):
    """(host to device, forward, forward + backward) of ``backend``: functions of the numpy batch, then of
    what the first returns, and a sync that waits for a result."""
    step = trainer._step
    if backend == "tensorflow":
        import tensorflow as tf

        model, loss_of, variables = trainer.model, trainer._loss_of, step._variables

        def forward(x, y, noise):
            with shared_masks(noise):
                return loss_of(model(x, training=True), y)

        def forward_backward(x, y, noise):
            with tf.GradientTape() as tape, shared_masks(noise):
                loss = loss_of(model(x, training=True), y)
            return loss, tape.gradient(loss, variables)

        def to_device(x, y, noise):
            masks = None if noise is None else {k: tf.convert_to_tensor(v) for k, v in noise.items()}
            return tf.convert_to_tensor(x), tf.convert_to_tensor(y), masks

        def sync(result):
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, result)

        compile_ = partial(tf.function, reduce_retracing=True)
        return to_device, compile_(forward), compile_(forward_backward), sync
    import jax

    def values():
        return [v.value for v in step._train], [v.value for v in step._state]

    forward = jax.jit(step.forward)
    both = jax.jit(jax.value_and_grad(step.forward, has_aux=True))
    return (
        lambda x, y, noise: jax.device_put((x, y.astype(np.int32) if y.dtype == np.int64 else y, noise)),
        lambda x, y, noise: forward(*values(), x, y, noise),
        lambda x, y, noise: both(*values(), x, y, noise),
        jax.block_until_ready,
    )


def _compiled_rounds(trainer, backend, images, y, lr, noise, repeats):
    to_device, forward, forward_backward, sync = _loss_parts(trainer, backend)

    def one_round() -> tuple[float, ...]:
        h2d, batch = timed(lambda: to_device(images, y, noise), sync)
        fwd, _ = timed(lambda: forward(*batch), sync)
        both, _ = timed(lambda: forward_backward(*batch), sync)
        step, _ = timed(lambda: trainer._step(images, y, lr, noise), lambda _: None)
        return parts_of_programs(step, h2d, fwd, both)

    return step_rounds(one_round, repeats)  # its first round traces and compiles


def _torch_phases(trainer, images, y, lr, noise) -> list[float]:
    import torch

    step = trainer._step
    step._opt.learning_rate.assign(lr)

    def sync(_):
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()

    h2d, (x, yt, masks) = timed(
        lambda: (
            ops.convert_to_tensor(images),
            ops.convert_to_tensor(y),
            None if noise is None else {k: ops.convert_to_tensor(v) for k, v in noise.items()},
        ),
        sync,
    )
    for v in step._variables:
        v.value.grad = None

    def forward():
        with shared_masks(masks):
            return trainer._loss_of(trainer.model(x, training=True), yt)

    fwd, loss = timed(forward, sync)
    bwd, _ = timed(loss.backward, sync)

    def update():
        with torch.no_grad():
            step._opt.apply([v.value.grad for v in step._variables], step._variables)

    return [h2d, fwd, bwd, timed(update, sync)[0]]


def step_breakdown(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, repeats: int = 3):
    backend = keras.backend.backend()
    y, lr = targets(labels, trainer._loss), trainer._lr if lr is None else lr
    with _kept(trainer):
        if backend != "torch":
            samples = _compiled_rounds(trainer, backend, images, y, lr, noise, repeats)
            how = {"tensorflow": "tf.function", "jax": "jax.jit"}[backend]
            method = (
                f"keras on {backend}: {how} programs timed apart: tensors made from the batch, forward, "
                "forward + gradients, the trainer's step; backward and optimizer are differences"
            )
        else:

            def one_round() -> list[float]:
                parts = _torch_phases(trainer, images, y, lr, noise)
                step, _ = timed(lambda: trainer._step(images, y, lr, noise), lambda _: None)
                return [step, *parts]

            samples = step_rounds(one_round, repeats)
            method = (
                "keras on torch: synchronised timers around the step's own phases (tensors, forward + loss, "
                "loss.backward, optimizer.apply); the step is the trainer's, timed apart"
            )
    return breakdown(samples, method=method)


def top_operations(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, steps=3, top=10):
    """The backend's own profiler over the trainer's steps: TensorFlow's (op events of the graph's nodes),
    ``jax.profiler`` (XLA's op events, described from the compiled HLO), ``torch.profiler``."""
    backend = keras.backend.backend()

    def run():
        trainer.train_step(images, labels, lr=lr, noise=noise)

    with _kept(trainer):
        run()  # traced and compiled before the profile
        if backend == "torch":
            import torch

            from medbench.frameworks.torch.profile import profiled_operators

            cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
            return profiled_operators(run, steps=steps, top=top, cuda=cuda)
        if backend == "jax":
            return _jax_table(trainer, images, labels, lr, noise, run, steps=steps, top=top)
        return _tensorflow_table(run, steps=steps, top=top)


def _jax_table(trainer, images, labels, lr, noise, run, *, steps, top):
    import jax.numpy as jnp

    from medbench.frameworks.jax.profile import traced_xla_ops, xla_table

    step = trainer._step
    y = targets(labels, trainer._loss)
    compiled = step._step.lower(
        [v.value for v in step._train], [v.value for v in step._state], [v.value for v in step._opt_vars],
        images, y.astype(np.int32) if y.dtype == np.int64 else y, jnp.asarray(lr or trainer._lr, jnp.float32),
        None if noise is None else dict(noise),
    ).compile()  # fmt: skip
    return xla_table(traced_xla_ops(run, steps), compiled.as_text(), steps=steps, top=top)


def _tensorflow_table(run, *, steps, top):
    """TensorFlow's profiler: every op event (``node:OpType``) of the executor's threads, by node."""
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    with tempfile.TemporaryDirectory(prefix="medbench-tf-trace-") as folder:
        tf.profiler.experimental.start(folder)
        try:
            for _ in range(steps):
                run()
        finally:
            tf.profiler.experimental.stop()
        (path,) = Path(folder).rglob("*.xplane.pb")
        space = xplane_pb2.XSpace.FromString(path.read_bytes())
    totals: dict[str, list] = {}
    kinds = {}
    for plane in space.planes:
        for line in plane.lines:
            if line.name == "python":
                continue
            for event in line.events:
                meta = plane.event_metadata[event.metadata_id]
                if not meta.display_name or ":" not in meta.name:
                    continue  # the executor's own events, thread-pool records
                node = meta.name.rsplit(":", 1)[0]
                entry = totals.setdefault(node, [0.0, 0])
                entry[0] += event.duration_ps / 1e9
                entry[1] += 1
                kinds[node] = meta.display_name
    details = {n: "backward" if n.startswith("gradient_tape/") else "" for n in totals}
    return top_table(
        {n: (ms, calls) for n, (ms, calls) in totals.items()},
        steps=steps,
        top=top,
        profiler="tf.profiler (op events of the graph's nodes)",
        kinds=kinds,
        details=details,
    )
