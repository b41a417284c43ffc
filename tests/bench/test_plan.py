"""The benchmark config and the order of its cells."""

from __future__ import annotations

import pytest

from medbench.bench.plan import Cell, Measurement, cell_config, cells, make_config, plan
from medbench.config import config_hash
from medbench.errors import ConfigError

ENGINES = ("torch-eager", "jax-jit", "onnx-torch")


def test_engines_are_interleaved_and_repeats_go_round_the_whole_grid():
    config = make_config(models=["simple_cnn"], sizes=[28, 64], engines=ENGINES, repeats=2, threads=1)
    order = [(run.repeat, run.cell.size, run.cell.engine) for run in plan(config)]
    assert order == [
        (0, 28, "torch-eager"),
        (0, 28, "jax-jit"),
        (0, 28, "onnx-torch"),
        (0, 64, "torch-eager"),
        (0, 64, "jax-jit"),
        (0, 64, "onnx-torch"),
        (1, 28, "torch-eager"),
        (1, 28, "jax-jit"),
        (1, 28, "onnx-torch"),
        (1, 64, "torch-eager"),
        (1, 64, "jax-jit"),
        (1, 64, "onnx-torch"),
    ]
    # never two runs of one engine back to back when several engines share a size
    engines = [engine for _, _, engine in order]
    assert all(a != b for a, b in zip(engines, engines[1:], strict=False))


def test_every_cell_appears_once_per_repeat():
    config = make_config(
        models=["simple_cnn", "resnet18"], sizes=[28, 224], engines=ENGINES, repeats=3, threads=1
    )
    runs = plan(config)
    assert len(runs) == 2 * 2 * 3 * 3
    for cell in cells(config):
        assert sorted(r.repeat for r in runs if r.cell == cell) == [0, 1, 2]


def test_batch_size_one_is_always_measured_and_sorted():
    config = make_config(engines=["torch-eager"], batch_sizes=[64, 8, 64], threads=1)
    assert config.batch_sizes == (1, 8, 64)


def test_quick_is_small_and_explicit_values_win():
    quick = make_config(quick=True, threads=1)
    assert quick.models == ("simple_cnn",) and quick.sizes == (28,) and quick.repeats == 1
    assert quick.measurement.min_count < Measurement().min_count
    assert make_config(quick=True, sizes=[64], repeats=2, threads=1).sizes == (64,)


def test_classes_and_channels_come_from_the_dataset():
    config = make_config(engines=["torch-eager"], dataset="BloodMNIST", threads=1)
    assert (config.dataset, config.in_channels, config.num_classes) == ("bloodmnist", 3, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"engines": ["torch-eagre"]}, "Did you mean torch-eager"),
        ({"models": ["resnet19"]}, "Unknown model 'resnet19'"),
        ({"sizes": [32]}, "Image size 32"),
        ({"batch_sizes": [0]}, "Batch size 0"),
        ({"repeats": 0}, "--repeats 0"),
        ({"threads": 10_000}, "--threads 10000"),
        ({"atol": -1.0}, "--atol"),
        ({"frameworks": ["mxnet"]}, "No inference engine runs on 'mxnet'"),
        ({"frameworks": ["keras-jax"]}, "None of the given --engine values runs on keras-jax"),
    ],
)
def test_mistakes_are_one_readable_config_error(kwargs, message):
    with pytest.raises(ConfigError) as info:
        make_config(**{"engines": ["torch-eager"], "threads": 1, **kwargs})
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_frameworks_keep_their_engines_each_keras_backend_its_own():
    engines = ["torch-eager", "keras-tf-xla", "keras-jax-jit", "keras-torch-eager"]
    config = make_config(engines=engines, frameworks=["keras-jax", "keras-torch"], threads=1)
    assert config.engines == ("keras-jax-jit", "keras-torch-eager")
    assert make_config(engines=engines, frameworks=["keras"], threads=1).engines == ("keras-tf-xla",)


def test_measurement_rules():
    rules = Measurement(min_count=50)
    assert rules.min_count_for(1) == 50
    assert rules.min_count_for(8) == 7  # ceil(50 / 8): as many images as the latency run
    assert rules.min_count_for(64) == 3  # never a single call
    assert Measurement(min_count=1).min_count_for(64) == 1
    with pytest.raises(ConfigError):
        Measurement(min_duration_s=5, max_duration_s=1)


def test_the_stored_config_is_the_same_for_every_repeat_and_names_the_cell():
    config = make_config(engines=ENGINES, threads=1)
    cell = Cell("jax-jit", "resnet18", 128)
    stored = cell_config(config, cell)
    assert (
        stored["engine"] == "jax-jit" and stored["image_size"] == 128 and stored["engine_framework"] == "jax"
    )
    assert config_hash(stored) == config_hash(cell_config(config, cell))
    assert config_hash(stored) != config_hash(cell_config(config, Cell("onnx-torch", "resnet18", 128)))
