"""Inference engines by name, and the one small interface each implements. Framework-free.

An *engine* is one way of running a model's forward pass: a framework plus an execution mode (eager,
``torch.compile``, ``jax.jit``, XLA through ``tf.function``, ONNX Runtime ...). Every engine is
``prepare(request, phases) -> PreparedEngine``, and a prepared engine is a function from an NHWC float32
numpy batch to float32 numpy logits, plus the ``sync`` that makes its device idle. Numpy in and numpy out is
deliberate: the measured latency is what a caller holding a numpy batch waits for, conversions included,
and every engine is held to the same boundary.

This module only *names* engines: which framework each needs (checked without importing it), which
environment variables its fresh process must have before the first import (``KERAS_BACKEND``), which
exported file it runs, and where its code lives (``module:function``, imported lazily, as Keras 3 picks a
backend by name). The code itself lives in ``medbench/frameworks/<fw>/infer.py`` (same module name in every
back-end) and, for ONNX Runtime, in :mod:`medbench.bench.onnx_engines`.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from medbench.errors import ConfigError, did_you_mean

# the interface an engine implements lives beside the back-ends that implement it
from medbench.frameworks import REQUIRES
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine

PrepareFn = Callable[[EngineRequest, Phases], PreparedEngine]


@dataclass(frozen=True)
class EngineSpec:
    """One engine: its name, the framework it needs, and where its ``prepare`` function lives."""

    name: str
    # the framework whose code runs the forward pass: torch, jax, keras (on TensorFlow), keras-jax,
    # keras-torch, onnxruntime
    framework: str
    entry: str  # "package.module:function", imported in the cell's process only
    measures: str  # one line for --list-engines and reports
    requires: tuple[str, ...] = ()  # top-level modules that must be installed
    env: Mapping[str, str] = field(default_factory=dict)  # set before the cell's first import
    artifact: str | None = None  # the exported model it runs, see ARTIFACTS
    options: Mapping[str, Any] = field(default_factory=dict)

    def missing(self) -> list[str]:
        """Required modules (the artifact's exporter's included) that are not installed."""
        needed = list(self.requires)
        if self.artifact:
            needed += [m for m in ARTIFACTS[self.artifact].requires if m not in needed]
        return [name for name in needed if importlib.util.find_spec(name) is None]

    @property
    def available(self) -> bool:
        return not self.missing()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "framework": self.framework,
            "entry": self.entry,
            "measures": self.measures,
            "requires": list(self.requires),
            "env": dict(self.env),
            "artifact": self.artifact,
            "options": dict(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EngineSpec:
        return cls(
            name=data["name"],
            framework=data["framework"],
            entry=data["entry"],
            measures=data.get("measures", ""),
            requires=tuple(data.get("requires", ())),
            env=MappingProxyType(dict(data.get("env", {}))),
            artifact=data.get("artifact"),
            options=MappingProxyType(dict(data.get("options", {}))),
        )


@dataclass(frozen=True)
class ArtifactSpec:
    """An exported model file made once per (model, size) in its own process, then loaded by cells."""

    name: str
    exporter: str  # "package.module:function"(model, weights, path, image_size, in_channels, num_classes)
    requires: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    suffix: str = ".onnx"


ARTIFACTS: Mapping[str, ArtifactSpec] = MappingProxyType(
    {
        "onnx-torch": ArtifactSpec(
            "onnx-torch", "medbench.frameworks.torch.infer:export_onnx", ("torch", "onnx")
        ),
        "onnx-keras": ArtifactSpec(
            "onnx-keras",
            "medbench.frameworks.keras.infer:export_onnx",
            ("keras", "tensorflow", "tf2onnx"),
            MappingProxyType({"KERAS_BACKEND": "tensorflow"}),
        ),
    }
)

_ENGINES: dict[str, EngineSpec] = {}


def register_engine(
    name: str,
    framework: str,
    entry: str,
    measures: str,
    *,
    requires: tuple[str, ...] = (),
    env: Mapping[str, str] | None = None,
    artifact: str | None = None,
    **options: Any,
) -> EngineSpec:
    """Adds an engine to the registry; the name must be new and an artifact must be known.

    ``requires`` defaults to what the engine's framework needs (:data:`medbench.frameworks.REQUIRES`), so
    that knowledge lives in one place; engines of other runtimes (ONNX Runtime) name theirs.
    """
    if name in _ENGINES:
        raise ValueError(f"engine {name!r} is already registered")
    if artifact is not None and artifact not in ARTIFACTS:
        raise ValueError(f"engine {name!r} names unknown artifact {artifact!r}")
    spec = EngineSpec(
        name,
        framework,
        entry,
        measures,
        tuple(requires or REQUIRES.get(framework, ())),
        MappingProxyType(dict(env or {})),
        artifact,
        MappingProxyType(options),
    )
    _ENGINES[name] = spec
    return spec


_TORCH = "medbench.frameworks.torch.infer"
_JAX = "medbench.frameworks.jax.infer"
_KERAS = "medbench.frameworks.keras.infer"
_ONNX = "medbench.bench.onnx_engines"

# The reference every engine's outputs are checked against (PyTorch eager, fp32).
REFERENCE_ENGINE = "torch-eager"

register_engine(
    "torch-eager",
    "torch",
    f"{_TORCH}:prepare_eager",
    "PyTorch eager: model.eval() under torch.inference_mode(), channels_last",
)
register_engine(
    "torch-compile",
    "torch",
    f"{_TORCH}:prepare_compiled",
    "torch.compile (Inductor, default mode, static shapes: one compilation per batch size)",
)
register_engine(
    "jax-jit",
    "jax",
    f"{_JAX}:prepare_jit",
    "Flax NNX forward under jax.jit, over the model state split once",
)
register_engine(
    "keras-tf-eager",
    "keras",
    f"{_KERAS}:prepare_direct",
    "Keras 3 on TensorFlow: model(x, training=False), eager (never model.predict)",
    env={"KERAS_BACKEND": "tensorflow"},
)
register_engine(
    "keras-tf-xla",
    "keras",
    f"{_KERAS}:prepare_tf_xla",
    "Keras 3 on TensorFlow: tf.function(jit_compile=True) around the call (XLA)",
    env={"KERAS_BACKEND": "tensorflow"},
)
register_engine(
    "keras-jax-jit",
    "keras-jax",
    f"{_KERAS}:prepare_jax_jit",
    "the same Keras model on Keras's JAX backend: jax.jit(model.stateless_call), as Keras's predict",
    env={"KERAS_BACKEND": "jax"},
)
register_engine(
    "keras-torch-eager",
    "keras-torch",
    f"{_KERAS}:prepare_direct",
    "the same Keras model on Keras's torch backend: model(x, training=False) under torch.no_grad()",
    env={"KERAS_BACKEND": "torch"},
)
register_engine(
    "onnx-torch",
    "onnxruntime",
    f"{_ONNX}:prepare_session",
    "ONNX Runtime on the torch.onnx.export model (dynamic batch axis), all graph optimisations",
    requires=("onnxruntime",),
    artifact="onnx-torch",
)
register_engine(
    "onnx-keras",
    "onnxruntime",
    f"{_ONNX}:prepare_session",
    "ONNX Runtime on the tf2onnx export of the Keras/TensorFlow model, all graph optimisations",
    requires=("onnxruntime",),
    artifact="onnx-keras",
)


def list_engines(*, available_only: bool = False) -> list[str]:
    """Registered engine names in registration order (only the installed ones with ``available_only``)."""
    return [name for name, spec in _ENGINES.items() if not available_only or spec.available]


def get_engine(name: str) -> EngineSpec:
    """The engine called ``name``.

    Raises:
        ConfigError: for an unknown name, with the closest known ones.
    """
    if name in _ENGINES:
        return _ENGINES[name]
    raise ConfigError(
        f"Unknown engine {name!r}.",
        f"{did_you_mean(name, _ENGINES)}Known engines: {', '.join(_ENGINES)} (see --list-engines).",
    )


def iter_engines() -> Iterator[EngineSpec]:
    yield from _ENGINES.values()


def load_entry(entry: str) -> Callable[..., Any]:
    """Imports ``package.module:function`` and returns the function."""
    module_name, _, attr = entry.partition(":")
    if not attr:
        raise ValueError(f"entry {entry!r} is not 'module:function'")
    return getattr(importlib.import_module(module_name), attr)
