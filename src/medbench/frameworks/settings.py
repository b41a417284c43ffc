"""The catalog of documented performance settings per framework; imports no framework.

Two kinds of choice change how fast a framework trains without changing what it computes:

- ``runtime.compile`` (:data:`COMPILE`): whether the training step is compiled, in each framework's own way.
  ``None`` (the default) is the framework's out-of-the-box behaviour, recorded as what was applied.
- ``runtime.settings`` (:data:`SETTINGS`): free-form per-framework settings, each validated against this
  catalog: its name, the frameworks it applies to, the values it takes, its default and how it is applied
  (an environment variable before the framework is imported, or a call right after).

``medbench tune`` probes what :func:`tune_candidates` lists: every documented setting changed alone against
the out-of-the-box configuration. A setting is listed here only if it leaves the mathematics unchanged (no
fast-math, no lower precision): a tuned run still trains the same model as the untuned one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medbench.errors import ConfigError

FRAMEWORKS: tuple[str, ...] = ("torch", "jax", "keras", "keras-jax", "keras-torch")


@dataclass(frozen=True)
class CompileChoice:
    """What ``runtime.compile`` means in one framework.

    ``default`` is what ``None`` resolves to (the framework's out-of-the-box behaviour); ``on`` and ``off``
    say what ``true`` and ``false`` run (``off`` is None where that is refused).
    """

    default: bool
    on: str
    off: str | None
    refused: str = ""  # why ``off`` is refused, when it is


COMPILE: dict[str, CompileChoice] = {
    "torch": CompileChoice(
        False, on="torch.compile of the model (inductor; backward by AOTAutograd)", off="eager"
    ),
    "jax": CompileChoice(
        True,
        on="jax.jit of the whole step (always)",
        off=None,
        refused="JAX's trainer is one jax.jit-compiled step: there is no eager JAX trainer to fall back to",
    ),
    # Keras' own `jit_compile`, as Keras 3's trainers apply it per backend; `auto` on a CPU resolves to these
    "keras": CompileChoice(False, on="tf.function(jit_compile=True): XLA", off="tf.function (graph, no XLA)"),
    "keras-jax": CompileChoice(True, on="jax.jit of the step", off="the step op by op (jit_compile=False)"),
    "keras-torch": CompileChoice(
        False, on="torch.compile of the forward pass and loss (Keras' jit_compile=True)", off="eager"
    ),
}


@dataclass(frozen=True)
class Setting:
    """One documented setting of ``runtime.settings``.

    ``values``: the values it takes (None: any string matching ``pattern``); ``probe``: the values
    ``medbench tune`` tries against the default (empty: none, e.g. a setting another branch implements).
    """

    name: str
    frameworks: tuple[str, ...]
    default: Any
    what: str
    how: str
    values: tuple[Any, ...] | None = None
    pattern: str | None = None
    probe: tuple[Any, ...] = ()

    def check(self, value: Any) -> Any:
        """``value`` if this setting takes it.

        Raises:
            ConfigError: a value outside :attr:`values` (or not matching :attr:`pattern`).
        """
        if self.values is not None:
            # bool is an int: True must not pass for 1, nor 1 for True
            if not any(type(value) is type(v) and value == v for v in self.values):
                raise ConfigError(
                    f"runtime.settings.{self.name} = {json.dumps(value, default=str)} is not one of its values.",
                    f"Use one of {', '.join(json.dumps(v) for v in self.values)}.",
                )
            return value
        if not isinstance(value, str) or (self.pattern and not re.fullmatch(self.pattern, value)):
            raise ConfigError(
                f"runtime.settings.{self.name} = {value!r} is not in the form it takes.",
                f"Give a string matching {self.pattern!r}.",
            )
        return value


# --flag or --flag=value tokens, space-separated, as XLA_FLAGS holds them (none: the default)
_FLAGS = r"\s*(--[a-z0-9_]+(=\S+)?(\s+--[a-z0-9_]+(=\S+)?)*)?\s*"

SETTINGS: tuple[Setting, ...] = (
    Setting(
        "onednn",
        ("torch", "keras-torch"),
        default=True,
        values=(True, False),
        what="oneDNN (MKL-DNN) kernels for CPU convolutions; off falls back to PyTorch's own (im2col) kernels",
        how="torch.backends.mkldnn.enabled, set by runtime.configure before any model is built",
        probe=(False,),
    ),
    Setting(
        "tf_onednn",
        ("keras",),
        default=True,
        values=(True, False),
        what="TensorFlow's oneDNN graph rewrites and kernels (on by default on x86 Linux)",
        how="TF_ENABLE_ONEDNN_OPTS=1/0 in the environment before TensorFlow is imported",
        probe=(False,),
    ),
    Setting(
        "xla_flags",
        ("jax", "keras-jax"),
        default="",
        pattern=_FLAGS,
        what="extra XLA:CPU/GPU flags (e.g. --xla_cpu_use_onednn=true); an unknown flag aborts XLA",
        how="appended to XLA_FLAGS before JAX's backend starts",
        probe=(
            "--xla_cpu_use_onednn=true",
            "--xla_cpu_use_xnnpack=true",
            "--xla_cpu_prefer_vector_width=512",
        ),
    ),
    Setting(
        "small_map_conv",
        ("jax",),
        default="xla",
        values=("xla", "matmul"),
        what="convolutions on tiny feature maps (ResNet-18's layer4 at 64 px): XLA's convolution, or the same "
        "sum as a matrix product over the patches (XLA:CPU's slow path on 2x2 maps avoided)",
        how="medbench.frameworks.jax.layers.set_small_map_conv(value), called by runtime.configure where "
        "that function exists",
        probe=("matmul",),
    ),
)
_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class FieldChoice:
    """A :class:`~medbench.config.RuntimeConfig` field that is a performance choice too: ``tune`` tries
    ``probe[framework]`` against ``default``, and reports label runs by it."""

    name: str
    default: Any
    probe: Mapping[str, tuple[Any, ...]]


FIELDS: tuple[FieldChoice, ...] = (
    # NHWC tensors are a view of the numpy batches (no copy); NCHW is PyTorch's classic layout
    FieldChoice("channels_last", True, {"torch": (False,)}),
)


def get_setting(name: str) -> Setting:
    """The catalog entry ``name``.

    Raises:
        ConfigError: no such setting; the message names the known ones.
    """
    if name not in _BY_NAME:
        raise ConfigError(
            f"Unknown runtime setting {name!r}.",
            f"Known settings: {'; '.join(f'{s.name} ({_names(s.frameworks)})' for s in SETTINGS)}.",
        )
    return _BY_NAME[name]


def settings_of(framework: str) -> tuple[Setting, ...]:
    """The settings that apply to ``framework``, in catalog order."""
    return tuple(s for s in SETTINGS if framework in s.frameworks)


def check_settings(settings: Mapping[str, Any], framework: str | None = None) -> dict[str, Any]:
    """``settings`` validated: every name known, every value allowed and, given ``framework``, every
    setting one of that framework's.

    Raises:
        ConfigError: an unknown name (the message names the known ones), a value it does not take, or a
            setting of another framework.
    """
    out = {}
    for name, value in settings.items():
        setting = get_setting(name)
        if framework is not None and framework not in setting.frameworks:
            known = ", ".join(s.name for s in settings_of(framework)) or "none"
            raise ConfigError(
                f"runtime.settings.{name} is a setting of {', '.join(setting.frameworks)}, not {framework}.",
                f"{framework}'s settings: {known}. In an experiment, give it to its framework only: "
                f"[per_framework.{setting.frameworks[0]}.runtime.settings].",
            )
        out[name] = setting.check(value)
    return out


def resolved(settings: Mapping[str, Any], framework: str) -> dict[str, Any]:
    """Every setting of ``framework``: the given value, else the default (what ``applied`` records)."""
    given = check_settings(settings, framework)
    return {s.name: given.get(s.name, s.default) for s in settings_of(framework)}


def check_compile(compile_: bool | None, framework: str) -> bool:
    """What ``runtime.compile`` resolves to in ``framework`` (``None``: the framework's default).

    Raises:
        ConfigError: ``false`` where the framework has no uncompiled trainer (JAX).
    """
    choice = COMPILE[framework]
    if compile_ is None:
        return choice.default
    if not compile_ and choice.off is None:
        raise ConfigError(
            f"runtime.compile = false is refused for {framework}: {choice.refused}.",
            "Leave runtime.compile unset (or true) for this framework.",
        )
    return bool(compile_)


def compile_mode(compile_: bool | None, framework: str) -> str:
    """How the training step runs, in words, for the ``applied`` record."""
    choice = COMPILE[framework]
    return choice.on if check_compile(compile_, framework) else str(choice.off)


@dataclass(frozen=True)
class Candidate:
    """One configuration ``medbench tune`` probes: a label and the run-config fields it sets (dotted)."""

    label: str
    overrides: dict[str, Any]


def tune_candidates(framework: str) -> list[Candidate]:
    """Out of the box first, then each documented choice of ``framework`` changed alone."""
    out = [Candidate("out of the box", {})]
    if not COMPILE[framework].default:
        out.append(Candidate("compile", {"runtime.compile": True}))
    for choice in FIELDS:
        for value in choice.probe.get(framework, ()):
            out.append(Candidate(f"{choice.name}={_word(value)}", {f"runtime.{choice.name}": value}))
    for setting in settings_of(framework):
        for value in setting.probe:
            out.append(
                Candidate(f"{setting.name}={_word(value)}", {f"runtime.settings.{setting.name}": value})
            )
    return out


def _word(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def tuned_choices(runtime: Mapping[str, Any], framework: str) -> list[str]:
    """The performance choices of a stored ``runtime`` section that differ from ``framework``'s out-of-the-box
    behaviour, as short words (``compile``, ``onednn=off``); empty for an untuned run."""
    words = []
    compile_ = runtime.get("compile")
    if compile_ is not None and framework in COMPILE and bool(compile_) != COMPILE[framework].default:
        words.append("compile" if compile_ else "no compile")
    for choice in FIELDS:
        value = runtime.get(choice.name, choice.default)
        if framework in choice.probe and value != choice.default:
            words.append(f"{choice.name}={_word(value)}")
    for name, value in sorted((runtime.get("settings") or {}).items()):
        setting = _BY_NAME.get(name)
        if setting is None or value != setting.default:
            words.append(f"{name}={_word(value)}")
    return words


def _names(frameworks: tuple[str, ...]) -> str:
    return ", ".join(frameworks)
