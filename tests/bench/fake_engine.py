"""Framework-free engines for the benchmark's tests: a linear classifier on mean-pooled pixels.

``logits = mean_over_pixels(images) @ W.T + b``, ``W`` and ``b`` being ``fc.weight`` and ``fc.bias`` from
the same PyTorch-named safetensors file the real engines load, so the cell's weights path, check and
timing run exactly as for a framework, in milliseconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from medbench.bench.engines import EngineSpec
from medbench.frameworks.checkpoints import read_state_dict
from medbench.frameworks.engine import EngineRequest, Phases, PreparedEngine


def linear_logits(images: np.ndarray, state: dict[str, np.ndarray]) -> np.ndarray:
    return (images.mean(axis=(1, 2)) @ state["fc.weight"].T + state["fc.bias"]).astype(np.float32)


def prepare_linear(request: EngineRequest, phases: Phases) -> PreparedEngine:
    with phases.phase("load_weights"):
        state = read_state_dict(request.weights)
    return PreparedEngine(lambda images: linear_logits(images, state), info={"device": "numpy"})


def prepare_broken(request: EngineRequest, phases: Phases) -> PreparedEngine:
    raise RuntimeError("this engine always fails to start")


def spec(name: str = "fake-linear", entry: str = "prepare_linear") -> EngineSpec:
    return EngineSpec(name, "numpy", f"{__name__}:{entry}", "test engine: linear layer in numpy")


def write_cell_files(
    folder: Path, *, size: int = 8, channels: int = 3, classes: int = 4, n: int = 4, seed: int = 0
) -> dict[str, str]:
    """Weights, inputs and reference logits as the session's reference task writes them."""
    rng = np.random.default_rng(seed)
    state = {
        "fc.weight": rng.standard_normal((classes, channels), dtype=np.float32),
        "fc.bias": rng.standard_normal(classes, dtype=np.float32),
    }
    inputs = rng.standard_normal((n, size, size, channels), dtype=np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "weights.safetensors"))
    np.save(folder / "inputs.npy", inputs)
    np.save(folder / "reference.npy", linear_logits(inputs, state))
    return {
        "weights": str(folder / "weights.safetensors"),
        "inputs": str(folder / "inputs.npy"),
        "reference": str(folder / "reference.npy"),
    }


def perturb_weights(path: str | Path, out: Path, *, delta: float = 0.5) -> str:
    state = read_state_dict(path)
    state["fc.weight"] = state["fc.weight"] + np.float32(delta)
    save_file(state, str(out))
    return str(out)
