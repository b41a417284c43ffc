"""Published MedMNIST figures (MedMNIST v2 Table 3, the MedMNIST+ benchmark), matched to our run groups.

The figures live in ``medbench/data/published_results.csv`` (sources in ``published_results.md`` beside it),
so that a corrected figure is a data change, not a code change. Every figure keeps its ``status``: the report
shows it, and never presents an ``unverified`` figure as if it were checked.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import cache
from importlib import resources

# Full citations for the short source names used in the CSV (its first row of each paper is the long form).
SOURCES: dict[str, str] = {
    "MedMNIST v2": (
        "Yang et al., MedMNIST v2 - A large-scale lightweight benchmark for 2D and 3D biomedical image "
        "classification, Scientific Data 10:41 (2023), Table 3. https://doi.org/10.1038/s41597-022-01721-8"
    ),
    "MedMNIST+": (
        "Doerrich et al., Rethinking model prototyping through the MedMNIST+ dataset collection, "
        "Scientific Reports (2025), arXiv:2404.15786 (figures read from the authors' plots). "
        "https://arxiv.org/abs/2404.15786"
    ),
}
UPSAMPLED_NOTE = (
    'MedMNIST v2 "(224)" rows are 28 px images upsampled to 224 px with nearest-neighbour, '
    "not the 224 px MedMNIST+ files."
)
MEDMNIST_PLUS_NOTE = (
    "MedMNIST+ models are ImageNet-pretrained (AdamW lr 1e-4, batch 64, early stopping; smaller images "
    "zero-padded to 224): a different recipe from medbench's default."
)
# Our registry names -> the names the papers print (spelt variously: "ResNet-18 (28)", "ResNet-18 E2E").
_MODEL_PREFIXES: dict[str, str] = {
    "resnet18": "ResNet-18",
    "resnet50": "ResNet-50",
    "densenet121": "DenseNet-121",
    "vgg16": "VGG16",
}


@dataclass(frozen=True)
class Reference:
    """One published figure: ``size`` is the side the model saw, ``upsampled_from`` the file's side."""

    source: str
    paper: str  # "MedMNIST v2" or "MedMNIST+"
    model: str
    dataset: str
    size: int
    upsampled_from: int | None
    test_acc: float | None
    test_auc: float | None
    status: str
    note: str

    @property
    def acc_unverified(self) -> bool:
        return self.status.startswith("unverified")

    @property
    def auc_unverified(self) -> bool:
        # "verified-quoted (acc)": only the ACC was found quoted, so the AUC stays unverified.
        return self.acc_unverified or self.status == "verified-quoted (acc)"

    @property
    def size_label(self) -> str:
        return f"{self.upsampled_from}→{self.size}" if self.upsampled_from else str(self.size)

    @property
    def is_best_of_benchmark(self) -> bool:
        return " best" in self.source


def _paper(source: str) -> str:
    return "MedMNIST+" if source.startswith("MedMNIST+") else "MedMNIST v2"


def _float(text: str) -> float | None:
    text = text.strip()
    return float(text) if text else None


def _parse_size(text: str) -> tuple[int, int | None]:
    """``"28"`` -> (28, None); ``"28->224 nearest"`` -> (224, 28)."""
    if "->" in text:
        low, _, high = text.partition("->")
        return int(high.split()[0]), int(low)
    return int(text), None


def parse_references(text: str) -> list[Reference]:
    """Parses the CSV text of ``published_results.csv``."""
    rows = []
    for row in csv.DictReader(io.StringIO(text)):
        size, upsampled_from = _parse_size(row["size"])
        rows.append(
            Reference(
                source=row["source"].strip(),
                paper=_paper(row["source"]),
                model=row["model"].strip(),
                dataset=row["dataset"].strip().lower(),
                size=size,
                upsampled_from=upsampled_from,
                test_acc=_float(row["test_acc"]),
                test_auc=_float(row["test_auc"]),
                status=row["status"].strip(),
                note=(row.get("note") or "").strip(),
            )
        )
    return rows


@cache
def load_references() -> tuple[Reference, ...]:
    """The packaged table (read once per process)."""
    text = resources.files("medbench.data").joinpath("published_results.csv").read_text(encoding="utf-8")
    return tuple(parse_references(text))


def model_matches(model: str, reference: Reference) -> bool:
    """Whether a published row is the same architecture as our registry name ``model``."""
    prefix = _MODEL_PREFIXES.get(model)
    return prefix is not None and reference.model.startswith(prefix)


def _same_protocol(ref: Reference, size: int, input_size: int) -> bool:
    """Same images seen the same way: native ``size`` px, or ``size`` px upsampled to ``input_size``."""
    if input_size != size:
        return ref.upsampled_from == size and ref.size == input_size
    return ref.upsampled_from is None and ref.size == size


def match_references(
    dataset: str,
    model: str,
    size: int,
    input_size: int | None = None,
    references: tuple[Reference, ...] | None = None,
) -> tuple[list[Reference], bool]:
    """Published rows to show beside a run group, and whether they are the same model.

    Same model and protocol first. When none exists (e.g. ``simple_cnn``), the best published ACC of each
    paper for the same dataset and protocol is returned as context, flagged ``False``, so the reader still
    sees what others reached without a wall of unrelated rows.
    """
    refs = load_references() if references is None else references
    input_size = input_size or size
    protocol = [r for r in refs if r.dataset == dataset and _same_protocol(r, size, input_size)]
    same_model = [r for r in protocol if model_matches(model, r)]
    if same_model:
        return same_model, True
    best = {}
    for ref in protocol:
        if ref.test_acc is not None and (ref.paper not in best or ref.test_acc > best[ref.paper].test_acc):
            best[ref.paper] = ref
    return [best[paper] for paper in SOURCES if paper in best], False
