"""Grouping stored runs into what the report compares: framework-free, numbers only.

A *comparison* is one (dataset, image size, model, recipe variant, data source); inside it every framework's
completed training runs are pooled over seeds into mean, sample standard deviation, n, min and max. Runs are
grouped by their stored config, not by experiment name, so the same recipe run twice is one group and two
recipes that share a name are never averaged together. An experiment's variants (``config.tags["variant"]``,
e.g. the configurations of a fine-tuning study) differ in their config, so each is a comparison of its own,
labelled by its name.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from medbench.report.baseline import Baseline, comparison_baseline
from medbench.report.runtime_variant import TUNING_FIELDS, framework_label
from medbench.results import RunRecord

# The criterion: frameworks agree when their mean test ACCs lie within this many points.
SPREAD_CRITERION_POINTS = 1.5
# Display and plot order; a framework not listed sorts after these, alphabetically.
FRAMEWORK_ORDER: tuple[str, ...] = ("torch", "jax", "keras", "keras-jax", "keras-torch")
UNFINISHED: tuple[str, ...] = ("failed", "interrupted", "running")
# Config fields that may differ between the runs of one comparison: they identify the framework and seed, or
# say where the data sits and how many threads ran, none of which changes what was trained.
_IGNORED_CONFIG: tuple[tuple[str, ...], ...] = (
    ("framework",),
    ("seed",),
    ("data", "root"),
    ("data", "data_file"),  # the data source is compared by its hash instead (DataSource)
    ("data", "size"),  # part of the key itself
    ("data", "resize_to"),
    ("runtime", "threads"),
    ("runtime", "interop_threads"),
    ("runtime", "channels_last"),  # a memory layout, not a different model
    *TUNING_FIELDS,  # compile and settings: a row of their own (framework_label), not another comparison
)


def framework_sort_key(name: str) -> tuple[int, str]:
    return (FRAMEWORK_ORDER.index(name) if name in FRAMEWORK_ORDER else len(FRAMEWORK_ORDER), name)


# ---- statistics --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """One figure over seeds: ``std`` is the sample standard deviation (ddof=1), None for a single seed."""

    mean: float
    std: float | None
    n: int
    min: float
    max: float

    @classmethod
    def of(cls, values: Iterable[Any]) -> Stat | None:
        """The statistics of the finite numbers among ``values``; None when there are none."""
        numbers = [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
        if not numbers:
            return None
        n = len(numbers)
        mean = sum(numbers) / n
        std = math.sqrt(sum((x - mean) ** 2 for x in numbers) / (n - 1)) if n > 1 else None
        return cls(mean=mean, std=std, n=n, min=min(numbers), max=max(numbers))


def metric(run: RunRecord, key: str) -> Any:
    return (run.metrics or {}).get(key)


def timing(run: RunRecord, key: str) -> Any:
    return (run.timings or {}).get(key)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -math.inf


# ---- data provenance -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """Where a run's images came from, as far as the report may claim it.

    ``kind`` is ``official`` (MD5 equals the registry's), ``official-unverified`` (at the official place, not
    checked), ``custom`` (any other file, e.g. a rebuild: never to be called the official dataset) or
    ``unknown`` (the run stopped before loading data).
    """

    kind: str
    sha256: str | None = None
    path: str | None = None
    note: str = ""

    @classmethod
    def of(cls, run: RunRecord) -> DataSource:
        prov = run.dataset_provenance
        if not prov:
            return cls("unknown")
        if prov.get("official"):
            kind = "official" if prov.get("verified") else "official-unverified"
            return cls(kind, note=prov.get("note") or "")
        return cls("custom", sha256=prov.get("sha256"), path=prov.get("path"), note=prov.get("note") or "")

    @property
    def is_official(self) -> bool:
        return self.kind in ("official", "official-unverified")

    def label(self, dataset: str) -> str:
        """A one-line description that never calls a custom file the official dataset."""
        if self.kind == "official":
            return f"official {dataset} file (MD5 verified)"
        if self.kind == "official-unverified":
            return f"official {dataset} file (MD5 not verified)"
        if self.kind == "custom":
            digest = f"sha256 {self.sha256[:16]}…" if self.sha256 else "no hash recorded"
            return f"custom file, NOT the official {dataset} ({digest})"
        return "unknown (no provenance recorded)"


# ---- grouping ---------------------------------------------------------------------------------------------


def _drop(config: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = config
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config without the fields that may differ inside one comparison (see ``_IGNORED_CONFIG``)."""
    out = copy.deepcopy(config)
    for path in _IGNORED_CONFIG:
        _drop(out, path)
    return out


def _flatten(value: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: dotted names, as the CLI's overrides spell them."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            flat.update(_flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def _variant_hash(config: dict[str, Any]) -> str:
    text = json.dumps(comparable_config(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def input_size_of(run: RunRecord) -> int:
    """The side the model saw (the store's ``size`` column)."""
    return int(run.size or run.config.get("data", {}).get("size") or 0)


def image_size_of(run: RunRecord) -> int:
    """The side of the stored images before any upsampling."""
    return int(run.config.get("data", {}).get("size") or run.size or 0)


@dataclass(frozen=True)
class GroupKey:
    dataset: str
    size: int  # image side in the file
    input_size: int  # side the model saw (differs when upsampled, as in MedMNIST v2's "(224)" rows)
    model: str
    variant: str  # hash of the comparable config
    source: DataSource

    @property
    def size_label(self) -> str:
        return f"{self.size}→{self.input_size}" if self.input_size != self.size else str(self.size)

    @property
    def curve_key(self) -> tuple[str, str, str, bool]:
        """What stays the same along an accuracy-vs-size line."""
        return (self.dataset, self.model, self.variant, self.source.is_official)


def group_key(run: RunRecord) -> GroupKey:
    return GroupKey(
        dataset=run.dataset or "?",
        size=image_size_of(run),
        input_size=input_size_of(run),
        model=run.model or "?",
        variant=_variant_hash(run.config),
        source=DataSource.of(run),
    )


@dataclass(frozen=True)
class CI:
    low: float
    high: float
    seed: int | None  # the run it comes from


@dataclass(frozen=True)
class ClassRecall:
    """Test recall per class (per label for multi-label tasks) over seeds, with each class's test images."""

    names: tuple[str, ...]
    recall: tuple[Stat | None, ...]
    support: tuple[int, ...] | None  # None when the pooled runs disagree on it
    multi_label: bool = False

    @classmethod
    def of(cls, runs: Sequence[RunRecord]) -> ClassRecall | None:
        """Pooled over the runs that stored ``test_per_class`` with the same class names as the first."""
        tables = [t for t in (_per_class_table(r) for r in runs) if t is not None]
        if not tables:
            return None
        names = tables[0][0]
        same = [t for t in tables if t[0] == names]
        supports = {t[2] for t in same}
        return cls(
            names=names,
            recall=tuple(Stat.of(t[1][i] for t in same) for i in range(len(names))),
            support=supports.pop() if len(supports) == 1 else None,
            multi_label=any(metric(r, "test_task") == "multi-label, binary-class" for r in runs),
        )


def _per_class_table(run: RunRecord) -> tuple[tuple[str, ...], list[Any], tuple[int, ...] | None] | None:
    """(names, recalls, supports) from a run's ``test_per_class`` (``EvaluationResult.to_dict``), if stored."""
    table = metric(run, "test_per_class")
    recall = table.get("recall") if isinstance(table, dict) else None
    if not isinstance(recall, list) or not recall:
        return None
    names = table.get("name")
    if not isinstance(names, list) or len(names) != len(recall):
        names = [str(i) for i in range(len(recall))]
    support = table.get("support")
    ok = (
        isinstance(support, list) and len(support) == len(recall) and all(isinstance(n, int) for n in support)
    )
    return tuple(str(n) for n in names), recall, tuple(support) if ok else None


@dataclass
class FrameworkResult:
    """One framework's completed runs in a comparison, pooled over seeds."""

    framework: str
    runs: list[RunRecord]
    test_acc: Stat | None = None
    test_auc: Stat | None = None
    test_balanced_acc: Stat | None = None  # mean recall over classes: what imbalanced data needs beside ACC
    test_macro_f1: Stat | None = None
    class_recall: ClassRecall | None = None
    val_auc: Stat | None = None
    s_per_epoch: Stat | None = None
    images_per_s: Stat | None = None
    first_step_s: Stat | None = None
    best_run: RunRecord | None = None  # best validation AUC: chosen without looking at the test set
    acc_ci: CI | None = None
    auc_ci: CI | None = None

    @classmethod
    def of(cls, framework: str, runs: list[RunRecord]) -> FrameworkResult:
        runs = sorted(runs, key=lambda r: (r.seed is None, r.seed or 0, r.created_at))
        best = max(runs, key=lambda r: (_number(metric(r, "val_auc")), _number(metric(r, "test_acc"))))
        return cls(
            framework=framework,
            runs=runs,
            test_acc=Stat.of(metric(r, "test_acc") for r in runs),
            test_auc=Stat.of(metric(r, "test_auc") for r in runs),
            test_balanced_acc=Stat.of(metric(r, "test_balanced_accuracy") for r in runs),
            test_macro_f1=Stat.of(metric(r, "test_macro_f1") for r in runs),
            class_recall=ClassRecall.of(runs),
            val_auc=Stat.of(metric(r, "val_auc") for r in runs),
            s_per_epoch=Stat.of(timing(r, "train_s_per_epoch") for r in runs),
            images_per_s=Stat.of(timing(r, "steady_images_per_s") for r in runs),
            first_step_s=Stat.of(timing(r, "first_step_s") for r in runs),
            best_run=best,
            acc_ci=stored_ci(best, "test_acc_ci"),
            auc_ci=stored_ci(best, "test_auc_ci"),
        )

    @property
    def seeds(self) -> list[int]:
        return [r.seed for r in self.runs if r.seed is not None]


def stored_ci(run: RunRecord, key: str) -> CI | None:
    """The bootstrap CI a run stored under ``key`` (``{"low", "high", ...}``), None when absent."""
    value = metric(run, key)
    if not isinstance(value, dict) or value.get("low") is None or value.get("high") is None:
        return None
    return CI(float(value["low"]), float(value["high"]), run.seed)


@dataclass
class Comparison:
    """The frameworks side by side for one (dataset, size, model, variant, data source)."""

    key: GroupKey
    frameworks: list[FrameworkResult]
    recipe: str = ""
    variant_label: str = ""  # what sets this variant apart from others of the same dataset/size/model
    variant_settings: str = ""  # the config fields behind a variant named by its tag, when they differ
    machines: int = 1  # distinct hardware the runs used: timings compare only when this is 1
    failed: list[RunRecord] = field(default_factory=list)
    baseline: Baseline | None = None  # always predicting the majority class (None: not enough stored)

    @property
    def acc_spread_points(self) -> float | None:
        """Largest minus smallest mean test ACC across frameworks, in percentage points (None with one)."""
        means = [f.test_acc.mean for f in self.frameworks if f.test_acc is not None]
        return (max(means) - min(means)) * 100 if len(means) >= 2 else None

    @property
    def within_criterion(self) -> bool | None:
        spread = self.acc_spread_points
        # A tolerance for float rounding: 1.5 points computed from fractions must count as within 1.5.
        return None if spread is None else spread <= SPREAD_CRITERION_POINTS + 1e-9

    @property
    def fastest(self) -> FrameworkResult | None:
        timed = [(f.s_per_epoch.mean, i) for i, f in enumerate(self.frameworks) if f.s_per_epoch is not None]
        return self.frameworks[min(timed)[1]] if timed else None

    def result(self, framework: str) -> FrameworkResult | None:
        return next((f for f in self.frameworks if f.framework == framework), None)

    @property
    def title(self) -> str:
        k = self.key
        parts = [f"{k.dataset} {k.size_label} px", k.model, self.variant_label]
        parts.append("" if k.source.is_official or k.source.kind == "unknown" else f"{k.source.kind} data")
        return " · ".join(p for p in parts if p)


def recipe_summary(config: dict[str, Any]) -> str:
    """The recipe in one line: epochs, batch, optimizer, schedule, precision."""
    recipe = config.get("recipe", {})
    opt = recipe.get("optimizer", {})
    schedule = recipe.get("schedule", {})
    runtime = config.get("runtime", {})
    parts = [
        f"{recipe.get('epochs', '?')} epochs",
        f"batch {recipe.get('batch_size', '?')}",
        f"{opt.get('name', '?')} lr {opt.get('lr', '?')}",
        f"schedule {schedule.get('kind', '?')}",
    ]
    if recipe.get("max_steps_per_epoch"):
        parts.append(f"at most {recipe['max_steps_per_epoch']} steps/epoch")
    parts += _imbalance_and_transfer(config)
    if runtime.get("precision") and runtime["precision"] != "fp32":
        parts.append(runtime["precision"])
    if runtime.get("device"):
        parts.append(f"device {runtime['device']}")
    return ", ".join(parts)


def _imbalance_and_transfer(config: dict[str, Any]) -> list[str]:
    """The settings for imbalanced data and pretrained backbones, where they are not the defaults."""
    recipe, data = config.get("recipe", {}), config.get("data", {})
    finetune = config.get("finetune") or {}
    parts = []
    if recipe.get("sampler", "shuffle") != "shuffle":
        parts.append(f"{recipe['sampler']} sampler")
    if recipe.get("class_weights"):
        parts.append(f"class weights {recipe['class_weights']}")
    if data.get("normalize", "official") != "official":
        parts.append(f"{data['normalize']} normalisation")
    if finetune.get("pretrained"):
        parts.append(f"{finetune['pretrained']} pretrained")
    trainable = finetune.get("trainable", "all")
    if trainable == "top":
        parts.append(f"training the top {finetune.get('top_stages', 1)} stage(s) and the head")
    elif trainable != "all":
        parts.append(f"training the {trainable} only")
    return parts


_TAG_FIELDS = frozenset({"tags", "tags.variant", "tags.finetune"})  # an empty tags dict flattens to "tags"
_UNNAMED_VARIANT = "default"  # experiments.expand's name when a file has no [[variants]]: nothing to tell


def variant_tag(config: dict[str, Any]) -> str:
    """The experiment variant a run belongs to (``config.tags["variant"]``, set by ``experiments.expand``),
    after its fine-tuning configuration (``tags["finetune"]``, the grid's ``finetune`` axis) if any, or ``""``
    for a run outside an experiment or of an experiment without named variants."""
    tags = config.get("tags")
    if not isinstance(tags, dict):
        return ""
    name = str(tags.get("variant") or "")
    name = "" if name == _UNNAMED_VARIANT else name
    return " ".join(part for part in (str(tags.get("finetune") or ""), name) if part)


def _variant_labels(
    keys: list[GroupKey], configs: dict[GroupKey, dict[str, Any]]
) -> dict[GroupKey, tuple[str, str]]:
    """Per key, ``(label, settings)``: its variant name, or else the config fields that set it apart from
    the keys with the same dataset/size/model/source; ``settings`` lists those fields when the name is the
    label (so the report can say what the variant changed)."""
    by_subject: dict[tuple, list[GroupKey]] = defaultdict(list)
    for key in keys:
        by_subject[(key.dataset, key.size, key.input_size, key.model, key.source)].append(key)
    labels: dict[GroupKey, tuple[str, str]] = {}
    for siblings in by_subject.values():
        names = {k: variant_tag(configs[k]) for k in siblings}
        if len(siblings) < 2:
            (k,) = siblings
            labels[k] = (names[k], "")
            continue
        flats = {k: _flatten(comparable_config(configs[k])) for k in siblings}
        fields = sorted({f for flat in flats.values() for f in flat} - _TAG_FIELDS)
        differing = [
            f for f in fields if len({json.dumps(flats[k].get(f), default=str) for k in siblings}) > 1
        ]
        # Distinct names (one sibling may have none) tell the rows apart; the same name on different configs
        # (two experiments reusing a name) needs the differing fields as well, or two rows would read alike.
        named = len(set(names.values())) == len(siblings)
        for k in siblings:
            settings = ", ".join(f"{f}={flats[k].get(f)}" for f in differing)
            if named:
                labels[k] = (names[k], settings)
            else:
                labels[k] = (", ".join(x for x in (names[k], settings) if x), "")
    return labels


def machine_signature(run: RunRecord) -> tuple[str, ...]:
    """What the speed of a run depends on: CPU model, GPUs, and the device the framework used."""
    env = run.environment or {}
    gpus = ",".join(sorted(g.get("name", "?") for g in env.get("gpus") or []))
    device = (env.get("framework") or {}).get("device") or ""
    return ((env.get("cpu") or {}).get("model") or "", gpus, str(device))


def compare(runs: Sequence[RunRecord]) -> list[Comparison]:
    """Every comparison in ``runs`` (completed ``train`` rows), sorted by dataset, model, size, variant.

    Failed and interrupted training runs are attached to the comparison they belong to (when it exists), so a
    framework that crashed is visible beside the ones that finished rather than silently absent.
    """
    completed = [r for r in runs if r.kind == "train" and r.status == "completed"]
    grouped: dict[GroupKey, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    configs: dict[GroupKey, dict[str, Any]] = {}
    for run in completed:
        key = group_key(run)
        grouped[key][framework_label(run)].append(run)  # "torch" beside "torch (tuned: compile)"
        configs.setdefault(key, run.config)
    labels = _variant_labels(list(grouped), configs)
    failed_by_variant: dict[tuple, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.kind == "train" and run.status in UNFINISHED:
            k = group_key(run)
            failed_by_variant[(k.dataset, k.size, k.input_size, k.model, k.variant)].append(run)
    comparisons = []
    for key, by_framework in grouped.items():
        results = [FrameworkResult.of(fw, rs) for fw, rs in by_framework.items()]
        results.sort(key=lambda f: framework_sort_key(f.framework))
        all_runs = [r for f in results for r in f.runs]
        comparisons.append(
            Comparison(
                key=key,
                frameworks=results,
                recipe=recipe_summary(configs[key]),
                variant_label=labels[key][0],
                variant_settings=labels[key][1],
                machines=len({machine_signature(r)[:2] for r in all_runs}),
                failed=failed_by_variant.get(
                    (key.dataset, key.size, key.input_size, key.model, key.variant), []
                ),
                baseline=comparison_baseline(all_runs),
            )
        )
    comparisons.sort(
        key=lambda c: (c.key.dataset, c.key.model, c.key.input_size, c.key.size, c.variant_label)
    )
    return comparisons


def unfinished_runs(runs: Sequence[RunRecord]) -> list[RunRecord]:
    """Failed, interrupted and still-running rows of any kind, oldest first."""
    return [r for r in runs if r.status in UNFINISHED]


# ---- environment ------------------------------------------------------------------------------------------


@dataclass
class EnvironmentGroup:
    """Runs that share one description (a machine, or a framework stack): the description and who used it."""

    fields: dict[str, str]
    runs: list[RunRecord]

    @property
    def frameworks(self) -> list[str]:
        return sorted({r.framework or "?" for r in self.runs}, key=framework_sort_key)

    @property
    def uses(self) -> list[str]:
        """``training`` first, then the benchmark engines, as first seen."""
        uses = list(dict.fromkeys(stack_use(r) for r in self.runs))
        return sorted(uses, key=lambda u: u != "training")


def _gib(value: Any) -> str:
    return f"{value / 2**30:.0f} GiB" if isinstance(value, (int, float)) else "?"


def _cpu_text(cpu: dict[str, Any]) -> str:
    cores = f"{cpu.get('physical_cores', '?')} cores / {cpu.get('logical_cores', '?')} threads"
    usable = cpu.get("usable_cores")
    limit = cpu.get("cgroup_cpu_limit")
    extra = [f"{usable} usable"] if usable is not None else []
    if limit:
        extra.append(f"cgroup limit {limit:g} CPUs")
    return f"{cpu.get('model') or '?'} ({cores}{'; ' + ', '.join(extra) if extra else ''})"


def machine_fields(env: dict[str, Any]) -> dict[str, str]:
    """A machine in a few readable fields (host, CPU, memory, GPUs, OS, Python, medbench)."""
    gpus = env.get("gpus") or []
    gpu_text = "; ".join(
        f"{g.get('name', '?')} ({g.get('memory_total_mib', '?')} MiB, driver {g.get('driver_version', '?')})"
        for g in gpus
    )
    mb = env.get("medbench") or {}
    commit = (mb.get("git_commit") or "")[:10]
    code = (
        f"{mb.get('version', '?')}"
        + (f" @ {commit}" if commit else "")
        + (" (dirty)" if mb.get("git_dirty") else "")
    )
    return {
        "host": env.get("hostname") or "?",
        "CPU": _cpu_text(env.get("cpu") or {}),
        "memory": _gib(env.get("memory_total_bytes")),
        "GPU": gpu_text or (f"none ({env['gpu_error']})" if env.get("gpu_error") else "none"),
        "OS": (env.get("os") or {}).get("platform") or "?",
        "Python": (env.get("python") or {}).get("version") or "?",
        "medbench": code,
    }


def stack_fields(run: RunRecord) -> dict[str, str] | None:
    """A framework stack: library versions, device, threads, precision and the thread variables set.

    Training rows describe their framework under ``environment["framework"]``; inference-benchmark rows
    describe the engine's under ``environment["engine"]`` (same fields, see ``medbench.bench.cell``). None
    for a row that describes neither (the machine-peak measurement, an older row): a row of "?" says nothing.
    """
    env = run.environment or {}
    fw = env.get("framework") or env.get("engine") or {}
    if not isinstance(fw, dict) or not (fw.get("versions") or fw.get("runtime")):
        return None
    runtime = fw.get("runtime") or {}
    versions = ", ".join(f"{k} {v}" for k, v in sorted((fw.get("versions") or {}).items()))
    # torch/jax/keras apply ``threads``; ONNX Runtime names its own; a bench row also records the request.
    threads = next(
        (runtime.get(k) for k in ("threads", "intra_op_num_threads") if runtime.get(k) is not None),
        env.get("threads"),
    )
    interop = runtime.get("interop_threads")
    thread_text = "?" if threads is None else str(threads) + (f" (+{interop} inter-op)" if interop else "")
    variables = ", ".join(f"{k}={v}" for k, v in sorted((env.get("env") or {}).items()))
    return {
        "framework": run.framework or fw.get("framework") or fw.get("name") or "?",
        "versions": versions or "?",
        "device": str(fw.get("device") or runtime.get("device") or "?"),
        "threads": thread_text,
        "precision": str(runtime.get("precision") or "?"),
        "variables": variables or "-",
    }


def stack_use(run: RunRecord) -> str:
    """What a stack was used for: ``training`` or the benchmark engine's name."""
    if run.kind == "bench":
        engine = (run.environment or {}).get("engine") or {}
        return str(engine.get("name") or (run.config or {}).get("engine") or "inference")
    return "training" if run.kind == "train" else run.kind


def group_environments(runs: Sequence[RunRecord]) -> tuple[list[EnvironmentGroup], list[EnvironmentGroup]]:
    """(machines, framework stacks): runs with the same description grouped, most-used first."""
    machines: dict[str, EnvironmentGroup] = {}
    stacks: dict[str, EnvironmentGroup] = {}
    for run in runs:
        if not run.environment:
            continue
        for table, fields in ((machines, machine_fields(run.environment)), (stacks, stack_fields(run))):
            if fields is None:
                continue
            signature = json.dumps(fields, sort_keys=True)
            table.setdefault(signature, EnvironmentGroup(fields, [])).runs.append(run)

    def order(groups: dict[str, EnvironmentGroup]) -> list[EnvironmentGroup]:
        return sorted(groups.values(), key=lambda g: (-len(g.runs), json.dumps(g.fields, sort_keys=True)))

    return order(machines), sorted(
        stacks.values(), key=lambda g: (framework_sort_key(g.fields["framework"]), -len(g.runs))
    )
