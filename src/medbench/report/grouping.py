"""What makes stored runs comparable: the key a run is grouped by, and where its data came from.

Runs are grouped by their stored config, not by experiment name: the key holds a hash of the config without
the fields that may differ inside one comparison (framework, seed, where the data sits, threads), so the
same recipe run twice is one group and two recipes that share a name are never averaged together.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from medbench.report.runtime_variant import TUNING_FIELDS
from medbench.results import RunRecord

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
    """One comparison: the runs with the same key differ only in framework and seed."""

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

    @property
    def without_source(self) -> tuple[str, int, int, str, str]:
        """The key but for the data source, which a run that failed before loading its data does not know."""
        return (self.dataset, self.size, self.input_size, self.model, self.variant)


def group_key(run: RunRecord) -> GroupKey:
    return GroupKey(
        dataset=run.dataset or "?",
        size=image_size_of(run),
        input_size=input_size_of(run),
        model=run.model or "?",
        variant=_variant_hash(run.config),
        source=DataSource.of(run),
    )
