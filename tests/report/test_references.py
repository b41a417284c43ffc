"""The packaged published figures: parsed with their status, and matched to the right run groups."""

from __future__ import annotations

from pathlib import Path

import pytest

from medbench.report.references import load_references, match_references

SHARED_COPY = Path(__file__).resolve().parents[3] / "shared" / "references" / "published-results.csv"


def test_the_table_loads_with_sizes_and_statuses():
    refs = load_references()
    assert len(refs) == 45
    upsampled = [r for r in refs if r.upsampled_from]
    assert upsampled and all(r.upsampled_from == 28 and r.size == 224 for r in upsampled)
    assert {r.paper for r in refs} == {"MedMNIST v2", "MedMNIST+"}
    derma = next(r for r in refs if r.model == "ResNet-18 (224)" and r.dataset == "dermamnist")
    assert derma.acc_unverified and derma.size_label == "28→224"
    automl = next(r for r in refs if r.model == "Google AutoML Vision" and r.dataset == "bloodmnist")
    assert not automl.acc_unverified and automl.auc_unverified  # "verified-quoted (acc)"


@pytest.mark.skipif(
    not SHARED_COPY.exists(), reason="the shared references folder is not beside the checkout"
)
def test_the_packaged_copy_equals_the_shared_file():
    packaged = Path(__file__).resolve().parents[2] / "src" / "medbench" / "data" / "published_results.csv"
    assert packaged.read_text() == SHARED_COPY.read_text()


def test_same_model_and_native_size_match():
    refs, same = match_references("pathmnist", "resnet18", 28)
    assert same
    assert [(r.paper, r.model, r.test_acc) for r in refs] == [
        ("MedMNIST v2", "ResNet-18 (28)", 0.907),
        ("MedMNIST+", "ResNet-18 E2E", 0.8554),
    ]


def test_upsampled_runs_match_the_v2_224_rows_and_native_224_the_medmnist_plus_rows():
    upsampled, _ = match_references("pathmnist", "resnet50", 28, 224)
    assert [r.model for r in upsampled] == ["ResNet-50 (224)"]
    native, _ = match_references("pathmnist", "resnet18", 224, 224)
    assert [r.model for r in native] == ["ResNet-18 E2E"] and native[0].upsampled_from is None


def test_a_model_without_published_figures_gets_the_best_of_each_paper_as_context():
    refs, same = match_references("dermamnist", "simple_cnn", 28)
    assert not same
    assert [(r.paper, r.model) for r in refs] == [
        ("MedMNIST v2", "Google AutoML Vision"),
        ("MedMNIST+", "VGG16 E2E"),
    ]
    assert match_references("octmnist", "resnet18", 28) == ([], False)
