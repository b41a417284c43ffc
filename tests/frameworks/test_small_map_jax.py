"""The ``small_map_conv`` formulations compute what XLA's convolution and max-pooling compute.

Each convolution shape ResNet-18 uses at 28 and 64 px (stem, every stage, the 1x1 downsamples) is computed
both ways (the fast suite: each geometry with at most 32 channels; the slow one: the real channels),
forward and backward (a random cotangent, gradients of input and kernel), and held to 1e-5 relative: the
largest error of a tensor against its largest entry, and the error's norm against the tensor's.
Max-pooling is held to the same, on ReLU outputs full of tied zeros, where a gradient that went to another
element of the window would show at once. Then a whole ResNet-18 at 64 px: the same loss and gradients
with the switch on and off, and the same losses from the trainer's steps.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")
pytest.importorskip("flax")

pytestmark = pytest.mark.jax

RTOL = 1e-5

# (input side, in channels, out channels, kernel, stride): the convolutions of ResNet-18
RESNET18_28 = [
    (28, 3, 64, 3, 1),  # the small-input stem
    (28, 64, 64, 3, 1),
    (28, 64, 128, 3, 2),
    (28, 64, 128, 1, 2),
    (14, 128, 128, 3, 1),
    (14, 128, 256, 3, 2),
    (14, 128, 256, 1, 2),
    (7, 256, 256, 3, 1),
    (7, 256, 512, 3, 2),
    (7, 256, 512, 1, 2),
    (4, 512, 512, 3, 1),
]
RESNET18_64 = [
    (64, 3, 64, 7, 2),  # the ImageNet stem
    (16, 64, 64, 3, 1),
    (16, 64, 128, 3, 2),
    (16, 64, 128, 1, 2),
    (8, 128, 128, 3, 1),
    (8, 128, 256, 3, 2),
    (8, 128, 256, 1, 2),
    (4, 256, 256, 3, 1),
    (4, 256, 512, 3, 2),  # -> 2x2: the slow gradient
    (4, 256, 512, 1, 2),
    (2, 512, 512, 3, 1),  # 2x2: the slow convolution
]


def _narrow(shape, most=32):
    """The same geometry (side, kernel, stride) with at most ``most`` channels: what the fast suite runs."""
    side, cin, cout, k, s = shape
    return side, min(cin, most), min(cout, most), k, s


def _id(shape) -> str:
    return "{}px-{}to{}-k{}s{}".format(*shape)


SHAPES = [pytest.param(s, id=_id(s)) for s in dict.fromkeys(map(_narrow, RESNET18_28 + RESNET18_64))]
FULL_SHAPES = [pytest.param(s, id=_id(s), marks=pytest.mark.slow) for s in RESNET18_28 + RESNET18_64]


@pytest.fixture
def switch():
    """``set_small_map_conv``, put back to ``"xla"`` afterwards (it is the process's setting)."""
    from medbench.frameworks.jax import layers

    yield layers.set_small_map_conv
    layers.set_small_map_conv("xla")


def assert_close(got, want, what: str) -> None:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    scale = max(np.abs(want).max(), 1e-30)
    assert np.abs(got - want).max() <= RTOL * scale, (
        f"{what}: max error {np.abs(got - want).max() / scale:.2e}"
    )
    assert np.linalg.norm(got - want) <= RTOL * max(np.linalg.norm(want), 1e-30), what


def _conv_pair(shape, batch=2, seed=0):
    import jax
    import jax.numpy as jnp
    from jax import lax

    from medbench.frameworks.jax.small_map import conv_as_matmul

    side, cin, cout, k, s = shape
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal((batch, side, side, cin), np.float32))
    w = jnp.asarray(rng.standard_normal((k, k, cin, cout), np.float32) / np.sqrt(k * k * cin))
    pads = ((k // 2, k // 2), (k // 2, k // 2))

    def xla(x, w):
        return lax.conv_general_dilated(x, w, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC"))

    def matmul(x, w):
        return conv_as_matmul(x, w, (s, s), pads)

    def with_vjp(fn):  # one compiled program, not an eager dispatch per slice
        return jax.jit(lambda x, w, c: (fn(x, w), *jax.vjp(fn, x, w)[1](c)))

    cotangent = jnp.asarray(rng.standard_normal(jax.eval_shape(xla, x, w).shape, np.float32))
    return with_vjp(xla)(x, w, cotangent), with_vjp(matmul)(x, w, cotangent)


@pytest.mark.parametrize("shape", SHAPES + FULL_SHAPES)
def test_a_convolution_as_a_matrix_product_has_xlas_output_and_gradients(shape):
    want, got = _conv_pair(shape)
    for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, want, strict=True):
        assert_close(a, b, f"{shape} {name}")


def test_taps_that_read_only_padding_are_left_out():
    import jax
    import jax.numpy as jnp

    from medbench.frameworks.jax.small_map import conv_as_matmul

    # a 1x1 map: of a 3x3 kernel only the centre tap ever meets a pixel
    jaxpr = jax.make_jaxpr(lambda x, w: conv_as_matmul(x, w, (1, 1), ((1, 1), (1, 1))))(
        jnp.ones((2, 1, 1, 8)), jnp.ones((3, 3, 8, 4))
    )
    (dot,) = [e for e in jaxpr.eqns if e.primitive.name == "dot_general"]
    assert dot.invars[1].aval.shape == (8, 4)
    assert _conv_pair((1, 8, 4, 3, 1))[0][0].shape == (2, 1, 1, 4)
    for a, b in zip(*reversed(_conv_pair((1, 8, 4, 3, 1))), strict=True):
        assert_close(a, b, "1x1 map")


def _primitives(fn, *args) -> set[str]:
    import jax

    return {e.primitive.name for e in jax.make_jaxpr(fn)(*args).jaxpr.eqns}


@pytest.mark.parametrize(
    ("shape", "as_matmul"),
    [((2, 16, 8, 3, 1), True), ((4, 16, 8, 3, 2), True), ((4, 16, 8, 1, 2), True), ((4, 16, 8, 3, 1), False)],
    ids=["2x2", "4x4-stride2", "4x4-1x1-stride2", "4x4"],
)
def test_the_switch_makes_small_output_maps_matrix_products_and_leaves_the_rest(switch, shape, as_matmul):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from medbench.frameworks.jax.layers import conv2d

    side, cin, cout, k, s = shape
    conv = conv2d(cin, cout, k, stride=s, rngs=nnx.Rngs(0))
    x = jnp.ones((2, side, side, cin))
    assert "conv_general_dilated" in _primitives(conv, x)  # "xla", the default
    switch("matmul")
    found = _primitives(jax.grad(lambda x: conv(x).sum()), x)
    assert ("conv_general_dilated" not in found) is as_matmul
    with pytest.raises(Exception, match="small_map_conv must be one of"):
        switch("im2col")


POOLS = [
    pytest.param((32, 64, 3, 2, 1), id="resnet-64px-stem-pool"),  # 32x32x64, 3x3 stride 2, padding 1
    pytest.param((28, 8, 2, 2, 0), id="simple_cnn-28"),
    pytest.param((7, 8, 2, 2, 0), id="odd-side"),  # the last row and column fall off, as in PyTorch
    pytest.param((5, 4, 3, 2, 1), id="small"),
]


@pytest.mark.parametrize("pool", POOLS)
def test_max_pooling_over_shifted_slices_has_xlas_output_and_gradient_ties_included(switch, pool):
    import jax
    import jax.numpy as jnp

    from medbench.frameworks.jax.layers import max_pool

    side, channels, window, stride, padding = pool
    rng = np.random.default_rng(1)
    # after a ReLU: about half the window's values are tied zeros
    x = jnp.asarray(np.maximum(rng.standard_normal((2, side, side, channels), np.float32), 0))
    x = x.at[0, :3, :3, 0].set(1.0)  # ties at the maximum too
    results = {}
    for formulation in ("xla", "matmul"):
        switch(formulation)

        def pool(x):
            return max_pool(x, window, stride, padding)

        cotangent = jnp.asarray(np.random.default_rng(2).standard_normal(jax.eval_shape(pool, x).shape))
        results[formulation] = jax.jit(lambda x, c, pool=pool: (pool(x), *jax.vjp(pool, x)[1](c)))(
            x, cotangent
        )
    for name, a, b in zip(("output", "gradient"), results["matmul"], results["xla"], strict=True):
        assert_close(a, b, f"{pool} {name}")
    assert "select_and_scatter_add" not in _primitives(jax.grad(lambda x: max_pool(x, 3, 2, 1).sum()), x)


def _resnet_loss_and_grads(formulation: str, images, labels):
    """XLA convolutions and pools in the forward pass, loss and gradients of ResNet-18 (64 px, training
    mode), traced after choosing ``formulation``."""
    import jax
    from flax import nnx

    from medbench.frameworks import get_framework
    from medbench.frameworks.jax import layers
    from medbench.frameworks.jax.train import loss_value, mode_view

    layers.set_small_map_conv(formulation)
    fw = get_framework("jax")
    model = fw.build_model("resnet18", num_classes=3, in_channels=3, image_size=64, seed=0)
    graphdef, params, rest = nnx.split(mode_view(model, train=True), nnx.Param, ...)
    params, rest = nnx.as_pure(params), nnx.as_pure(rest)  # arrays, as the trainer's step takes them

    def objective(params):
        logits = nnx.merge(graphdef, params, rest)(images)
        return loss_value(logits, labels, loss="cross_entropy", label_smoothing=0.0)

    forward = str(jax.make_jaxpr(objective)(params))
    convs = forward.count("conv_general_dilated[") + forward.count("reduce_window_max[")
    loss, grads = jax.jit(jax.value_and_grad(objective))(params)
    return (
        convs,
        float(loss),
        {jax.tree_util.keystr(p): g for p, g in jax.tree_util.tree_leaves_with_path(grads)},
    )


@pytest.mark.slow
def test_resnet18_at_64px_has_the_same_loss_gradients_and_step_with_the_switch_on_and_off(switch):
    from medbench.config import OptimizerConfig
    from medbench.frameworks import get_framework

    rng = np.random.default_rng(0)
    images = rng.standard_normal((4, 64, 64, 3), np.float32)
    labels = np.array([0, 1, 2, 1], np.int32)
    convs_xla, loss_xla, grads_xla = _resnet_loss_and_grads("xla", images, labels)
    convs_mm, loss_mm, grads_mm = _resnet_loss_and_grads("matmul", images, labels)
    # 20 convolutions and the max-pool; layer4's five convolutions (2x2 maps) and the pool change hands
    assert (convs_xla, convs_mm) == (21, 15)
    assert abs(loss_mm - loss_xla) <= RTOL * abs(loss_xla)
    assert grads_mm.keys() == grads_xla.keys()
    for path, grad in grads_xla.items():
        assert_close(grads_mm[path], grad, path)

    fw = get_framework("jax")
    losses = {}
    for formulation in ("xla", "matmul"):
        switch(formulation)
        model = fw.build_model("resnet18", num_classes=3, in_channels=3, image_size=64, seed=0)
        trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="sgd", lr=0.1))
        losses[formulation] = [trainer.train_step(images, labels.astype(np.int64)).loss for _ in range(2)]
    np.testing.assert_allclose(losses["matmul"], losses["xla"], rtol=RTOL)
