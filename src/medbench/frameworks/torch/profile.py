"""FLOPs of a PyTorch model, counted by PyTorch itself (see :mod:`medbench.frameworks.flops`), and where a
training step's time goes: :func:`step_breakdown` (synchronised clocks around each phase of the trainer's
step) and :func:`top_operations` (``torch.profiler``)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from medbench.frameworks.noise import shared_masks
from medbench.frameworks.profiling import breakdown, step_rounds, timed, top_table
from medbench.frameworks.torch.runtime import synchronize
from medbench.frameworks.torch.train import TorchTrainer, rng_state, set_rng_state
from medbench.frameworks.training import targets


@torch.no_grad()
def flops_per_image(model: nn.Module, *, image_size: int, in_channels: int) -> int:
    """``FlopCounterMode`` over one eval-mode forward pass of one image: 2*MACs of convs and matmuls."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    x = torch.zeros(1, in_channels, image_size, image_size, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return int(counter.get_total_flops())


# ---- where a training step's time goes ------------------------------------------------------------------


@contextmanager
def _kept(trainer: TorchTrainer) -> Iterator[None]:
    """Everything a step changes, put back afterwards: weights and BatchNorm statistics, optimizer and
    loss-scaler state, the random generators; gradients are dropped (the next step sets them afresh)."""
    model = trainer.model
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    optimizer = copy.deepcopy(trainer.optimizer.state_dict())
    scaler = copy.deepcopy(trainer.scaler.state_dict())
    generators = rng_state()
    try:
        yield
    finally:
        model.load_state_dict(weights)
        trainer.optimizer.load_state_dict(optimizer)
        trainer.scaler.load_state_dict(scaler)
        set_rng_state(generators)
        trainer.optimizer.zero_grad(set_to_none=True)


def _phases(trainer: TorchTrainer, images: np.ndarray, labels: np.ndarray, noise) -> list[float]:
    """One step as :meth:`TorchTrainer.train_step` takes it, each phase timed to its end: seconds of
    (host to device, forward with the loss, backward, optimizer with the scaler)."""
    rt = trainer._runtime

    def sync(_):
        synchronize(rt)

    def to_device():
        x = rt.to_input(images)
        y = torch.from_numpy(targets(labels, trainer._loss)).to(rt.device, non_blocking=True)
        masks = None if noise is None else {k: torch.from_numpy(v).to(x.device) for k, v in noise.items()}
        return x, y, masks

    h2d, (x, y, masks) = timed(to_device, sync)
    trainer.model.train()
    for module in trainer._frozen_norm:
        module.eval()
    trainer.optimizer.zero_grad(set_to_none=True)

    def forward():
        with rt.autocast(), shared_masks(masks):
            return trainer._loss_fn(trainer.model(x), y)

    fwd, loss = timed(forward, sync)
    bwd, _ = timed(lambda: trainer.scaler.scale(loss).backward(), sync)

    def update():
        trainer.scaler.step(trainer.optimizer)
        trainer.scaler.update()

    opt, _ = timed(update, sync)
    return [h2d, fwd, bwd, opt]


def step_breakdown(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, repeats: int = 3):
    """The trainer's step taken apart (its own phases, the device synchronised after each), and the
    trainer's whole ``train_step`` timed on its own, round after round; a first round warms up."""

    def one_round() -> list[float]:
        parts = _phases(trainer, images, labels, noise)
        step, _ = timed(lambda: trainer.train_step(images, labels, lr=lr, noise=noise), lambda _: None)
        return [step, *parts]

    with _kept(trainer):
        samples = step_rounds(one_round, repeats)
    return breakdown(
        samples,
        method="torch: synchronised timers around the trainer's own phases (to(device), forward + loss, "
        "backward, optimizer.step with the grad scaler); the step is the trainer's train_step, timed apart",
    )


def top_operations(trainer, images: np.ndarray, labels: np.ndarray, *, lr=None, noise=None, steps=3, top=10):
    """``torch.profiler`` over the trainer's own steps (:func:`profiled_operators`)."""
    with _kept(trainer):
        trainer.train_step(images, labels, lr=lr, noise=noise)  # warm: allocator, oneDNN primitives
        return profiled_operators(
            lambda: trainer.train_step(images, labels, lr=lr, noise=noise),
            steps=steps,
            top=top,
            cuda=trainer._runtime.device == "cuda",
        )


def profiled_operators(step, *, steps: int, top: int, cuda: bool) -> dict:
    """``steps`` calls of ``step`` under ``torch.profiler``: operators by *self* time (CPU, or the GPU's
    with ``cuda``), grouped by operator and input shapes (also used by Keras on torch)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        for _ in range(steps):
            step()
    totals, kinds, details = {}, {}, {}
    for event in prof.key_averages(group_by_input_shape=True):
        self_us = event.self_device_time_total if cuda else event.self_cpu_time_total
        if self_us <= 0:
            continue
        shapes = [s for s in (event.input_shapes or []) if s]
        name = f"{event.key} {shapes}" if shapes else event.key
        totals[name] = (self_us / 1e3, event.count)
        kinds[name] = event.key
        details[name] = ", ".join("x".join(map(str, s)) for s in shapes[:3])
    profiler = f"torch.profiler (self {'CUDA' if cuda else 'CPU'} time)"
    return top_table(totals, steps=steps, top=top, profiler=profiler, kinds=kinds, details=details)
