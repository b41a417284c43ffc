"""The interface of an inference engine: what it is asked to prepare, and what it hands back. Framework-free.

Each back-end's ``infer.py`` implements it (``prepare_*(request, phases) -> PreparedEngine``); the engine
registry (:mod:`medbench.bench.engines`) names the engines and the benchmark (:mod:`medbench.bench.cell`)
calls them. It lives here, with the back-ends, so that a back-end never imports the application.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

# Phases an engine times inside ``prepare`` (the cell adds the first call and the measurement).
PHASES: tuple[str, ...] = ("import", "build", "load_weights", "compile")

Device = Literal["auto", "cpu", "gpu"]


class Phases(Protocol):
    """Times named phases; :class:`medbench.timing.Chrono` is one."""

    def phase(self, name: str) -> AbstractContextManager[None]: ...


@dataclass(frozen=True)
class EngineRequest:
    """What an engine is asked to prepare: one model at one image size, with given weights.

    ``weights`` is a PyTorch-named safetensors file (loaded through the back-end's ``load_state_dict``);
    ``artifact`` the exported model an ONNX engine runs instead. ``batch_sizes`` are the shapes the cell will
    call with, so an engine may compile them ahead of time if that is its nature.
    """

    model: str
    image_size: int
    in_channels: int
    num_classes: int
    weights: Path
    batch_sizes: tuple[int, ...] = (1,)
    threads: int | None = None
    device: Device = "auto"
    artifact: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)  # engine-specific, e.g. torch.compile's mode


def _no_sync() -> None:
    """The sync of an engine whose call returns only when its work is done."""


@dataclass
class PreparedEngine:
    """A ready engine: ``predict(images) -> logits`` on numpy arrays, and how to wait for its device.

    ``info`` is recorded with the result: framework versions, the device, the runtime settings applied.
    ``gpu_peak_bytes`` returns the device-memory peak (None on CPU).
    """

    predict: Callable[[np.ndarray], np.ndarray]
    sync: Callable[[], None] = _no_sync
    info: dict[str, Any] = field(default_factory=dict)
    gpu_peak_bytes: Callable[[], int | None] | None = None


def load_engine_model(
    framework: str, request: EngineRequest, phases: Phases
) -> tuple[Any, Any, dict[str, Any]]:
    """The start every engine that runs a back-end's own model shares: configure the back-end (threads,
    device), build the model, load the request's weights, each timed as its phase.

    Returns the back-end, the model and the ``info`` a :class:`PreparedEngine` records (versions, device,
    the runtime applied). The framework is imported inside the "import" phase: it is part of a cold start.
    """
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework
    from medbench.frameworks.checkpoints import read_state_dict

    with phases.phase("import"):
        fw = get_framework(framework)
        applied = fw.configure(RuntimeConfig(threads=request.threads, device=request.device))
    with phases.phase("build"):
        model = fw.build_model(
            request.model,
            num_classes=request.num_classes,
            in_channels=request.in_channels,
            image_size=request.image_size,
        )
    with phases.phase("load_weights"):
        fw.load_state_dict(model, read_state_dict(request.weights))
    return fw, model, {"versions": fw.versions(), "device": fw.device_name(), "runtime": applied}
