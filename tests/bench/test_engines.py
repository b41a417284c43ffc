"""The engine registry: names, frameworks, environment variables, where each engine's code lives."""

from __future__ import annotations

import importlib.util

import pytest

from medbench.bench.engines import ARTIFACTS, EngineSpec, get_engine, list_engines, load_entry
from medbench.errors import ConfigError

ALL = tuple(list_engines())


def test_every_framework_has_an_engine_and_every_engine_a_framework():
    """Each training framework can be benchmarked, and no engine names a framework medbench lacks."""
    from medbench.frameworks import FRAMEWORKS

    by_framework = {get_engine(n).framework for n in ALL}
    assert set(FRAMEWORKS) <= by_framework
    assert by_framework - set(FRAMEWORKS) <= {"onnxruntime"}
    assert len(set(ALL)) == len(ALL)


@pytest.mark.parametrize("name", ALL)
def test_each_engine_points_at_an_existing_module_and_needs_what_it_says(name):
    spec = get_engine(name)
    module, _, function = spec.entry.partition(":")
    assert function.startswith("prepare_")
    assert importlib.util.find_spec(module) is not None  # without importing any framework
    if spec.framework.startswith("keras"):
        # the engine's framework is the Keras backend it runs on: keras (TensorFlow), keras-jax, keras-torch
        from medbench.frameworks.keras.runtime import BACKEND_OF_FRAMEWORK  # imports no Keras

        backend = BACKEND_OF_FRAMEWORK[spec.framework]
        assert spec.env["KERAS_BACKEND"] == backend
        assert backend in spec.requires  # the backend it runs on must be installed
    if spec.framework == "onnxruntime":
        assert spec.artifact in ARTIFACTS and spec.requires == ("onnxruntime",)
    else:  # a framework's engine needs what its back-end needs, stated once in medbench.frameworks
        from medbench.frameworks import REQUIRES

        assert spec.requires == REQUIRES[spec.framework]


def test_unknown_engine_names_the_closest():
    with pytest.raises(ConfigError, match="Did you mean jax-jit"):
        get_engine("jax_jit")


def test_a_spec_travels_in_a_job_as_plain_data():
    spec = get_engine("keras-jax-jit")
    assert EngineSpec.from_dict(spec.to_dict()) == spec


def test_missing_modules_are_found_without_importing():
    spec = EngineSpec(
        "x", "numpy", "medbench.bench.engines:get_engine", "test", requires=("numpy", "no_such_mod")
    )
    assert spec.missing() == ["no_such_mod"] and not spec.available
    assert load_entry(spec.entry) is get_engine
