"""Shared pieces of the benchmark tests: a cell job for the framework-free test engine."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from medbench.bench.plan import Measurement
from tests.bench import fake_engine

# Tiny and short: the logic under test, never this machine's speed.
TINY = Measurement(
    min_count=3, min_duration_s=0.0, max_duration_s=2.0, warmup_min=1, warmup_max_s=0.5, stable_window=1
)


def make_job(
    files: dict[str, str],
    store: Path,
    *,
    entry: str = "prepare_linear",
    repeat: int = 0,
    batch_sizes=(1, 4),
    spawned_at: float | None = None,
) -> dict[str, Any]:
    spec = fake_engine.spec(entry=entry)
    config = {"engine": spec.name, "model": "linear", "image_size": 8}
    return {
        "kind": "bench",
        "run_id": str(uuid.uuid4()),
        "store": str(store),
        "spawned_at": spawned_at,
        "start": {
            "kind": "bench",
            "config": config,
            "framework": "numpy",
            "model": "linear",
            "size": 8,
            "experiment": "test-session",
        },
        "cell": {
            "engine": spec.to_dict(),
            "model": "linear",
            "image_size": 8,
            "in_channels": 3,
            "num_classes": 4,
            "batch_sizes": list(batch_sizes),
            "threads": 1,
            "device": "cpu",
            **files,
            "artifact": None,
            "atol": 1e-3,
            "rtol": 1e-3,
            "measurement": asdict(TINY),
            "repeat": repeat,
            "flops_per_image": 1000,
            "fma_peak_flops_per_s": 4e9,
            "best_kernel_flops_per_s": 1e9,
        },
    }


@pytest.fixture
def cell_files(tmp_path):
    return fake_engine.write_cell_files(tmp_path / "cell")
