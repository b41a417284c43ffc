"""JAX inference engine for the benchmark (see :mod:`medbench.bench.engines`): the Flax NNX model under jit.

The model is split once into a static graph and its state; the jitted function merges them inside the
trace, so a call is one dispatch of one compiled XLA program (no module-graph traversal per call, which
``nnx.jit`` would do). Compilation is lazy: the first call of each batch size compiles, and the cell
reports that time apart from the latency. Importing this module does not import JAX.

The model is built *abstractly* (``nnx.eval_shape``: shapes only) and given zero arrays before the weights
are loaded, as a deployment restoring a checkpoint does: an eager Flax initialisation runs every
initializer op by op (each compiled on first use), which costs seconds of cold start for random numbers
that the loaded weights then replace. The other engines' builds are cheap either way.
"""

from __future__ import annotations

import numpy as np

from medbench.config import RuntimeConfig
from medbench.frameworks.checkpoints import read_state_dict
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine


def _materialize(abstract):
    """A concrete module from an abstract one: zeros for every array, a fixed key for RNG streams."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(abstract)

    def leaf(value):
        if not isinstance(value, jax.ShapeDtypeStruct):
            return value
        if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
            return jax.random.key(0)  # dropout streams: unused in evaluation
        return np.zeros(value.shape, value.dtype)

    return nnx.merge(graphdef, jax.tree.map(leaf, state))


def prepare_jit(request: EngineRequest, phases: Phases) -> PreparedEngine:
    with phases.phase("import"):
        from medbench.frameworks import get_framework

        fw = get_framework("jax")
        applied = fw.configure(RuntimeConfig(threads=request.threads, device=request.device))
        import jax
        from flax import nnx

        from medbench.frameworks.jax.train import mode_view
    with phases.phase("build"):
        abstract = nnx.eval_shape(
            lambda: fw.build_model(
                request.model,
                num_classes=request.num_classes,
                in_channels=request.in_channels,
                image_size=request.image_size,
            )
        )
        model = _materialize(abstract)
    with phases.phase("load_weights"):
        fw.load_state_dict(model, read_state_dict(request.weights))
        graphdef, state = nnx.split(mode_view(model, train=False))
        state = jax.device_put(state)
    with phases.phase("compile"):  # wraps only; XLA compiles on the first call of each shape
        forward = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    runtime = fw.runtime

    def predict(images: np.ndarray) -> np.ndarray:
        return np.asarray(runtime.keep(forward(state, images)))

    info = {"versions": fw.versions(), "device": fw.device_name(), "runtime": applied}
    return PreparedEngine(predict, fw.synchronize, info, fw.gpu_peak())
