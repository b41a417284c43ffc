"""What a comparison trained, in words: its recipe in one line, and the label that tells an experiment's
variants (recipes that differ) apart."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from medbench.report.grouping import GroupKey, comparable_config


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


def variant_labels(
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
