"""The engine registry: names, frameworks, environment variables, where each engine's code lives."""

from __future__ import annotations

import importlib.util

import pytest

from medbench.bench.engines import ARTIFACTS, EngineSpec, get_engine, list_engines, load_entry
from medbench.errors import ConfigError

ALL = (
    "torch-eager",
    "torch-compile",
    "jax-jit",
    "keras-tf-eager",
    "keras-tf-xla",
    "keras-jax-jit",
    "keras-torch-eager",
    "onnx-torch",
    "onnx-keras",
)


def test_every_engine_of_the_issue_is_registered():
    assert tuple(list_engines()) == ALL


@pytest.mark.parametrize("name", ALL)
def test_each_engine_points_at_an_existing_module_and_needs_what_it_says(name):
    spec = get_engine(name)
    module, _, function = spec.entry.partition(":")
    assert function.startswith("prepare_")
    assert importlib.util.find_spec(module) is not None  # without importing any framework
    if spec.framework.startswith("keras"):
        # the engine's framework is the Keras backend it runs on: keras (TensorFlow), keras-jax, keras-torch
        backend = {"keras": "tensorflow", "keras-jax": "jax", "keras-torch": "torch"}[spec.framework]
        assert spec.env["KERAS_BACKEND"] == backend
        assert backend in spec.requires  # the backend it runs on must be installed
    if spec.framework == "onnxruntime":
        assert spec.artifact in ARTIFACTS and spec.requires == ("onnxruntime",)


def test_the_same_keras_model_runs_on_three_backends():
    backends = {get_engine(n).env["KERAS_BACKEND"] for n in ALL if n.startswith("keras-")}
    assert backends == {"tensorflow", "jax", "torch"}


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
