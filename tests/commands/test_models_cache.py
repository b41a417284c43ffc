"""``medbench models`` answers from its cache in MEDBENCH_HOME without starting a framework process."""

from __future__ import annotations

import json

from medbench.frameworks import FRAMEWORKS, describe
from tests.commands.helpers import medbench


def test_models_reads_the_cache_and_starts_no_framework(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDBENCH_HOME", str(tmp_path))
    dims = {"image_size": 28, "num_classes": 9, "in_channels": 3}
    # Figures no framework would produce: if they come back, nothing was measured.
    seeded = {
        describe.cache_key(fw, "simple_cnn", **dims): {
            "params": 1234 + i,
            "flops": 5e6,
            "versions": {fw: "x"},
        }
        for i, fw in enumerate(FRAMEWORKS)  # every one the table lists, or it measures the rest
    }
    describe._write_cache(describe.cache_path(), seeded)
    result = medbench("models", "-m", "simple_cnn", "--format", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert (row["params_torch"], row["params_jax"], row["params_keras"]) == (1234, 1235, 1236)
    assert row["gflops_torch"] == 0.005
    raw = json.loads(medbench("models", "-m", "simple_cnn", "-f", "jax", "--json", home=tmp_path).stdout)
    assert raw["jax"]["cached"] == ["simple_cnn"] and raw["jax"]["versions"] == {"jax": "x"}
    table = medbench("models", "-m", "simple_cnn", home=tmp_path).stdout
    assert "1,234" in table and "A red value differs between frameworks" in table
    assert describe._read_cache(describe.cache_path()) == seeded  # nothing was measured and added


def test_the_key_changes_with_the_input_and_the_code(tmp_path, monkeypatch):
    base = describe.cache_key("torch", "resnet18", image_size=28, num_classes=9, in_channels=3)
    assert base != describe.cache_key("torch", "resnet18", image_size=64, num_classes=9, in_channels=3)
    assert base != describe.cache_key("torch", "resnet18", image_size=28, num_classes=2, in_channels=1)
    assert describe.code_digest() in base and "torch=" in base  # medbench's model code and torch's version
