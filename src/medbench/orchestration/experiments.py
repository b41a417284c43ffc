"""Experiment files: a grid over datasets, sizes, frameworks, models, variants and seeds, validated and expanded.

An experiment is TOML (or JSON)::

    name = "quick"
    [grid]
    datasets = ["bloodmnist"]
    sizes = [28]
    frameworks = ["torch", "jax", "keras"]
    models = ["simple_cnn"]
    seeds = [0]
    [base.recipe]          # any RunConfig field, applied to every trial
    epochs = 3
    [[variants]]           # optional named overlays (fine-tuning configurations, recipes ...)
    name = "linear_probe"
    set = { "model_options.freeze" = "backbone" }
    [per_framework.torch.runtime]   # optional: run-config fields for one framework's trials only
    compile = true

Each point of the grid becomes a :class:`Trial` holding a fully resolved, validated :class:`RunConfig`, so a
mistake anywhere in the grid is reported before the first trial starts, and each trial's config hash lets a
re-run skip what is already done.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib
from pydantic import Field, field_validator

from medbench.config import RunConfig, _Frozen, parse_config, set_dotted
from medbench.errors import ConfigError
from medbench.finetune import PRESETS

SHIPPED_DIR = Path(__file__).resolve().parents[1] / "experiment_files"
# Every field of the format, commented, itself a valid experiment: `medbench experiments show reference`.
REFERENCE = SHIPPED_DIR / "reference" / "experiment.toml"


def shipped_experiments() -> dict[str, Path]:
    """The experiments that come with medbench, by name (the reference file is not among them)."""
    return {p.stem: p for p in sorted(SHIPPED_DIR.glob("*.toml"))}


def _refuse_unknown(names: Iterable[str], known: Collection[str], what: str) -> None:
    """A validator's refusal of the ``names`` not in ``known`` (pydantic reports the ValueError with the field)."""
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; choose from {list(known)}")


class Variant(_Frozen):
    """A named set of dotted-path overrides applied on top of ``base`` (e.g. a fine-tuning configuration)."""

    name: str
    set: dict[str, Any] = Field(default_factory=dict)


class Grid(_Frozen):
    # every axis needs a value: an empty one would make a grid of 0 trials that "succeeds" doing nothing
    datasets: list[str] = Field(min_length=1)
    sizes: list[int] = Field(default=[28], min_length=1)
    frameworks: list[str] = Field(default=["torch", "jax", "keras"], min_length=1)
    models: list[str] = Field(default=["simple_cnn"], min_length=1)
    seeds: list[int] = Field(default=[0], min_length=1)
    # named fine-tuning configurations (medbench.finetune.PRESETS); empty: the base's own `finetune`
    finetune: list[str] = Field(default_factory=list)

    @field_validator("finetune")
    @classmethod
    def _known_presets(cls, value: list[str]) -> list[str]:
        _refuse_unknown(value, PRESETS, "fine-tuning configuration(s)")
        if len(set(value)) != len(value):
            raise ValueError(f"fine-tuning configurations must be unique, got {value}")
        return value

    @field_validator("frameworks")
    @classmethod
    def _known_frameworks(cls, value: list[str]) -> list[str]:
        from medbench.frameworks import FRAMEWORKS

        _refuse_unknown(value, FRAMEWORKS, "framework(s)")
        return value


class BenchMeasure(_Frozen):
    """Inference benchmark cells to run for each (model, size) of the grid after training."""

    engines: list[str] = Field(default_factory=list)  # empty: one engine per framework of the grid
    # empty: the grid's sizes. The benchmark times inference on synthetic batches of the model at each size, so
    # it can reach sizes too costly to train on (MedMNIST+'s 128 and 224 px on two CPU cores).
    sizes: list[int] = Field(default_factory=list)
    batch_sizes: list[int] = [1, 64]
    repeats: int = Field(1, ge=1)
    min_count: int = Field(20, ge=1)
    min_duration_s: float = Field(0.5, gt=0)

    @field_validator("sizes")
    @classmethod
    def _published_sizes(cls, value: list[int]) -> list[int]:
        from medbench.data.registry import SIZES

        _refuse_unknown(value, SIZES, "benchmark size(s)")
        return value


class Measure(_Frozen):
    train: bool = True
    bench: BenchMeasure | None = None


class Resources(_Frozen):
    """What one trial asks of an executor (Ray schedules on it; the local executor runs one at a time)."""

    cpus: float = Field(2, gt=0)
    gpus: float = Field(0, ge=0)
    timeout_s: float | None = Field(None, gt=0)


class ExperimentSpec(_Frozen):
    name: str = Field(min_length=1)
    description: str = ""
    grid: Grid
    base: dict[str, Any] = Field(default_factory=dict)
    variants: list[Variant] = Field(default_factory=lambda: [Variant(name="default")], min_length=1)
    data_files: dict[str, Path] = Field(
        default_factory=dict
    )  # dataset flag -> a local npz in the official layout
    measure: Measure = Measure()
    resources: Resources = Resources()
    # framework -> run-config fields for that framework's trials only, merged over `base` (variants go on
    # top): a framework's own runtime settings, e.g. what `medbench tune --write` found best
    per_framework: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("per_framework")
    @classmethod
    def _known_framework_sections(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        from medbench.frameworks import FRAMEWORKS

        _refuse_unknown(value, FRAMEWORKS, "framework(s)")
        return value

    @field_validator("variants")
    @classmethod
    def _unique_variants(cls, value: list[Variant]) -> list[Variant]:
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        return value


@dataclass(frozen=True)
class Trial:
    """One point of the grid: a resolved run config plus the labels it is shown and grouped by."""

    key: str  # readable and unique within the experiment
    config: RunConfig
    variant: str
    labels: dict[str, Any] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        return self.config.hash


def load_experiment(source: str | Path, overrides: list[tuple[str, Any]] = ()) -> ExperimentSpec:
    """Reads an experiment file (or a shipped experiment by name: ``quick``, ``bloodmnist_sizes`` ...)."""
    path = resolve_experiment_path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file.", "Pass an experiment TOML or JSON file.") from None
    try:
        raw = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} cannot be parsed: {err}.", "Fix its TOML/JSON syntax.") from None
    for dotted, value in overrides:
        raw = set_dotted(raw, dotted, value)
    spec = parse_config(raw, ExperimentSpec)
    for flag in spec.data_files:
        from medbench.data.registry import get_dataset

        get_dataset(flag)
    return spec


def resolve_experiment_path(source: str | Path) -> Path:
    path = Path(source).expanduser()
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.toml"))[:5]
        raise ConfigError(
            f"{path} is a folder, not an experiment file.",
            "Pass a TOML or JSON file" + (f", e.g. one of {', '.join(inside)} inside it." if inside else "."),
        )
    if path.exists():
        return path
    for suffix in (".toml", ".json"):
        shipped = SHIPPED_DIR / f"{source}{suffix}"
        if shipped.exists():
            return shipped
    if str(source) == "reference":
        return REFERENCE
    names = sorted(shipped_experiments())
    raise ConfigError(
        f"No experiment file {str(source)!r}.",
        f"Give a path, or one of the shipped experiments: {', '.join(names)}.",
    )


def expand(spec: ExperimentSpec) -> list[Trial]:
    """Every trial of the grid, validated; the order interleaves frameworks (A B C A B C ...) so that
    a slow drift of the machine over the grid does not fall on one framework."""
    g = spec.grid
    trials = []
    for dataset, size, model, tuning, variant, seed, framework in itertools.product(
        g.datasets, g.sizes, g.models, g.finetune or [None], spec.variants, g.seeds, g.frameworks
    ):
        raw: dict[str, Any] = json.loads(json.dumps(spec.base, default=str))
        if tuning is not None:  # the preset's fields over the base's (which may name the pretrained weights)
            for field_name, value in PRESETS[tuning].items():
                raw = set_dotted(raw, f"finetune.{field_name}", value)
            raw = set_dotted(raw, "tags.finetune", tuning)
        raw = set_dotted(raw, "framework", framework)
        raw = set_dotted(raw, "model", model)
        raw = set_dotted(raw, "seed", seed)
        raw = set_dotted(raw, "data.dataset", dataset)
        raw = set_dotted(raw, "data.size", size)
        raw = merged(raw, spec.per_framework.get(framework, {}))
        if dataset in spec.data_files:
            raw = set_dotted(raw, "data.data_file", str(spec.data_files[dataset]))
        for dotted, value in variant.set.items():
            raw = set_dotted(raw, dotted, value)
        raw = set_dotted(raw, "tags.variant", variant.name)
        name = variant.name if tuning is None else f"{tuning}-{variant.name}"
        try:
            config = parse_config(raw)
        except ConfigError as err:
            raise ConfigError(
                f"Trial {dataset}/{size}/{model}/{name}/{framework}/seed {seed}: {err.problem}",
                err.fix,
            ) from None
        key = f"{dataset}-{size}-{model}-{name}-{framework}-s{seed}"
        labels = {
            "dataset": dataset,
            "size": size,
            "model": model,
            "variant": variant.name,
            "framework": framework,
            "seed": seed,
        }
        if tuning is not None:
            labels["finetune"] = tuning
        trials.append(Trial(key=key, config=config, variant=name, labels=labels))
    return trials


def merged(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overlay``'s fields set over it, section by section (a section is merged, not replaced)."""
    out = dict(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out
