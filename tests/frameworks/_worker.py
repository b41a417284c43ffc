"""Checks in ONE framework, run in a fresh worker process: the task functions of the framework tests.

Importing TensorFlow, PyTorch and JAX into one pytest process is fragile and hides thread settings, so every
framework-touching check runs in a child, through the framework-neutral :class:`medbench.frameworks.base.Backend`
API, and the test process only compares numpy results. The child is medbench's own worker running
:func:`run_tasks` as a ``call`` job (:mod:`medbench.orchestration.process`); ``harness.py`` is the parent's
side. ``arrays.npz`` in the job's directory holds the inputs; each task writes ``<id>.npz`` (arrays) there
and an entry (numbers, messages) in the result.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import numpy as np


def run_tasks(framework: str, directory: str, tasks: list[dict], settings: dict) -> dict[str, Any]:
    """Runs ``tasks`` (``{"id", "kind", ...}``, the kind naming a ``task_*`` function) in ``framework``
    configured with ``settings``; returns each task's entry by id, ``{"error": traceback}`` for one that
    raised, beside what configure applied (``_applied``), the versions and the configure time.

    Each task also gets ``directory`` (where it may write files of its own)."""
    from medbench.config import RuntimeConfig
    from medbench.frameworks import get_framework

    job = Path(directory)
    fw = get_framework(framework)
    start = time.perf_counter()
    applied = fw.configure(RuntimeConfig(**settings))
    arrays = dict(np.load(job / "arrays.npz")) if (job / "arrays.npz").exists() else {}
    results = {
        "_applied": applied,
        "_versions": fw.versions(),
        "_configure_seconds": time.perf_counter() - start,
    }
    for task in tasks:
        handler = globals()[f"task_{task['kind']}"]
        out_arrays: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        try:
            results[task["id"]] = handler(fw, {**task, "directory": str(job)}, arrays, out_arrays)
        except Exception:  # reported per task, so one failure does not hide the others
            results[task["id"]] = {"error": traceback.format_exc()}
        results[task["id"]]["seconds"] = round(time.perf_counter() - start, 2)
        if out_arrays:
            np.savez(job / f"{task['id']}.npz", **out_arrays)
    return json.loads(json.dumps(results, default=str))  # what is not JSON (a dtype, a path) as its text


def _build(fw, task, *, seed=None, **overrides):
    spec = {**task["build"], **overrides}
    return fw.build_model(
        spec["model"],
        num_classes=spec["num_classes"],
        in_channels=spec["in_channels"],
        image_size=spec["image_size"],
        seed=task.get("seed", 0) if seed is None else seed,
        **spec.get("options", {}),
    )


def _state(arrays, prefix):
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def _save_state(out, prefix, state):
    out.update({prefix + k: v for k, v in state.items()})


def _calibrate_torch(model, images: np.ndarray, seed: int) -> None:
    """Non-trivial BatchNorm affine and running statistics, so a swapped mean/var or gamma/beta shows."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.weight.shape, generator=gen))
            bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=gen))
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average: one pass sets the running stats to the batch stats
        model.train()
        model(torch.from_numpy(images).permute(0, 3, 1, 2))
    for bn in bns:
        bn.momentum = 0.1


# ---- tasks -------------------------------------------------------------------------------------------------
def _initial(fw, task, arrays, out, model=None):
    """The model a task starts from: reference weights loaded, or (torch) calibrated and exported."""
    model = _build(fw, task) if model is None else model
    if task.get("weights"):
        fw.load_state_dict(model, _state(arrays, task["weights"]))
    elif task.get("calibrate"):
        _calibrate_torch(model, arrays[task["calibrate"]], task.get("seed", 0))
        _save_state(out, "init/", fw.state_dict(model))
    return model


def task_model(fw, task, arrays, out):
    """Build; report params/FLOPs/fresh names; load reference weights (torch: calibrate); predict; export."""
    fresh_model = _build(fw, task)
    fresh = fw.state_dict(fresh_model)
    res = {
        "params": fw.count_params(fresh_model),
        "fresh_shapes": {k: list(v.shape) for k, v in fresh.items()},
    }
    if task.get("flops"):
        b = task["build"]
        res["flops"] = fw.flops_per_image(
            fresh_model, image_size=b["image_size"], in_channels=b["in_channels"]
        )
    if task.get("export_fresh"):  # True: every tensor; a string: those whose names start with it
        prefix = task["export_fresh"]
        _save_state(
            out,
            "fresh/",
            fresh if prefix is True else {k: v for k, v in fresh.items() if k.startswith(prefix)},
        )
    del fresh
    model = _initial(fw, task, arrays, out, model=fresh_model)
    out["logits"] = fw.predict(model, arrays[task["inputs"]])
    _save_state(out, "state/", fw.state_dict(model))
    return res


def task_train(fw, task, arrays, out):
    """Load reference weights, run the given steps, report losses, final weights and eval logits."""
    from medbench.config import OptimizerConfig

    model = _initial(fw, task, arrays, out)
    spec = task["optimizer"]
    spec = OptimizerConfig(**{**spec, "betas": tuple(spec.get("betas", (0.9, 0.999)))})
    plans = _plans(fw, model, task)
    trainer = fw.create_trainer(
        model,
        optimizer=spec,
        loss=task.get("loss", "cross_entropy"),
        label_smoothing=task.get("label_smoothing", 0),
        plan=plans[0] if plans else None,
    )
    losses = []
    for i, step in enumerate(task["steps"]):
        if plans and i and plans[i] != plans[i - 1]:
            trainer.set_plan(plans[i])
        losses.append(
            trainer.train_step(arrays[step["images"]], arrays[step["labels"]], lr=step.get("lr")).loss
        )
    out["eval_logits"] = trainer.eval_logits(arrays[task["steps"][0]["images"]])
    _save_state(out, "state/", fw.state_dict(trainer.model))
    out["predict_logits"] = fw.predict(trainer.model, arrays[task["steps"][0]["images"]])
    return {"losses": losses}


def _plans(fw, model, task) -> list | None:
    """The fine-tuning plan of each step (from the task's finetune config and each step's epoch), or None."""
    if "finetune" not in task:
        return None
    from medbench.config import FinetuneConfig
    from medbench.finetune import plan_for_epoch
    from medbench.frameworks.families import resolve_model

    family, _ = resolve_model(task["build"]["model"], task["build"]["options"])
    keys = list(fw.state_dict(model))
    config = FinetuneConfig(**task["finetune"])
    return [plan_for_epoch(family, keys, config, step.get("epoch", 0)) for step in task["steps"]]


def _error(fn) -> dict:
    from medbench.errors import MedbenchError

    try:
        fn()
    except MedbenchError as err:
        return {"raised": type(err).__name__, "message": str(err)}
    except Exception as err:  # the wrong kind of error is a finding too
        return {"raised": type(err).__name__, "message": str(err), "not_medbench": True}
    return {"raised": None}


def task_weights(fw, task, arrays, out):
    """Own-format round trip, torch-format checkpoints, and every way a checkpoint can be wrong."""
    from medbench.frameworks.checkpoints import read_state_dict

    model = _initial(fw, task, arrays, out)
    if fw.name == "torch":  # first: the checks below read these files too
        _write_torch_checkpoints(model, task)
    ref = fw.state_dict(model)
    images = arrays[task["inputs"]]
    out["logits"] = fw.predict(model, images)
    path = fw.save_weights(model, Path(task["directory"]) / f"{fw.name}_own")
    res = {"own_path": str(path)}
    other = _build(fw, task, seed=task.get("seed", 0) + 1)
    out["other_logits_before"] = fw.predict(other, images)
    fw.load_weights(other, path)
    out["reloaded_logits"] = fw.predict(other, images)

    bad_shape = dict(ref)
    key = task["shape_key"]
    bad_shape[key] = np.zeros(bad_shape[key].shape[:-1] + (bad_shape[key].shape[-1] + 1,), np.float32)
    missing = {k: v for k, v in ref.items() if k != task["missing_key"]}
    res["errors"] = {
        "wrong_shape": _error(lambda: fw.load_state_dict(_build(fw, task), bad_shape)),
        "missing": _error(lambda: fw.load_state_dict(_build(fw, task), missing)),
        "unexpected": _error(lambda: fw.load_state_dict(_build(fw, task), {**ref, "bogus.weight": ref[key]})),
        "own_format_other_classes": _error(
            lambda: fw.load_weights(_build(fw, task, num_classes=task["build"]["num_classes"] + 1), path)
        ),
        "evil_pth": _error(lambda: fw.load_weights(_build(fw, task), task["evil"])),
        "evil_pth_numpy_reader": _error(lambda: read_state_dict(task["evil"])),
    }
    res["non_strict_missing"] = _error(lambda: fw.load_state_dict(_build(fw, task), missing, strict=False))
    if fw.name != "torch":
        from medbench.frameworks.checkpoints import load_torchvision_checkpoint

        loaded = _build(fw, task, seed=7)
        load_torchvision_checkpoint(fw, loaded, task["pth"])  # the shared helper, numpy reader
        out["pth_logits"] = fw.predict(loaded, images)
        loaded = _build(fw, task, seed=8)
        fw.load_weights(loaded, task["safetensors"])  # the back-end's own entry point
        out["safetensors_logits"] = fw.predict(loaded, images)
    res["evil_marker_exists"] = os.path.exists(task["evil_marker"])
    return res


class _Evil:
    """Unpickling this creates a file: proof that code in a checkpoint ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _write_torch_checkpoints(model, task) -> None:
    """What the other frameworks must read: a torchvision-style .pth, safetensors, and a malicious .pth."""
    import torch

    torch.save(model.state_dict(), task["pth"])
    from medbench.frameworks import get_framework

    get_framework("torch").save_weights(model, task["safetensors"])
    evil = {k: v for k, v in model.state_dict().items()}
    evil["payload"] = _Evil(task["evil_marker"])
    torch.save(evil, task["evil"])


def task_optimizer(fw, task, arrays, out):
    """The optimizer alone, on given gradients: ``params`` and one gradient array per step (``grads/i``)."""
    from medbench.config import OptimizerConfig

    spec = task["optimizer"]
    spec = OptimizerConfig(**{**spec, "betas": tuple(spec.get("betas", (0.9, 0.999)))})
    p0, lrs = arrays[task["params"]], task["lrs"]
    grads = [arrays[f"{task['grads']}/{i}"] for i in range(len(lrs))]
    if fw.name == "torch":
        import torch

        from medbench.frameworks.torch.train import create_optimizer

        param = torch.nn.Parameter(torch.from_numpy(p0.copy()))
        opt = create_optimizer([param], spec)
        for g, lr in zip(grads, lrs, strict=True):
            for group in opt.param_groups:
                group["lr"] = lr
            param.grad = torch.from_numpy(g)
            opt.step()
        out["params"] = param.detach().numpy()
    elif fw.name == "jax":
        import jax.numpy as jnp
        import optax

        from medbench.frameworks.jax.train import create_optimizer

        tx, params = create_optimizer(spec), jnp.asarray(p0)
        state = tx.init(params)
        for g, lr in zip(grads, lrs, strict=True):
            state.hyperparams["learning_rate"] = jnp.asarray(lr, jnp.float32)
            updates, state = tx.update(jnp.asarray(g), state, params)
            params = optax.apply_updates(params, updates)
        out["params"] = np.asarray(params)
    else:  # keras on any backend
        import contextlib

        import keras

        from medbench.frameworks.keras.train import create_optimizer

        opt, variable = create_optimizer(spec), keras.Variable(p0)
        opt.build([variable])
        for g, lr in zip(grads, lrs, strict=True):
            opt.learning_rate.assign(lr)
            with _no_grad() if keras.backend.backend() == "torch" else contextlib.nullcontext():
                opt.apply([keras.ops.convert_to_tensor(g)], [variable])  # as the torch step applies it
        out["params"] = keras.ops.convert_to_numpy(variable)
    return {}


def _no_grad():
    import torch

    return torch.no_grad()


def task_runtime(fw, task, arrays, out):
    """Reads the thread settings back from the framework itself, not from what configure() says."""
    res = {"xla_flags": os.environ.get("XLA_FLAGS", "")}
    if hasattr(os, "sched_getaffinity"):
        res["affinity"] = sorted(os.sched_getaffinity(0))
    if fw.name == "torch":
        import torch

        res.update(intra=torch.get_num_threads(), inter=torch.get_num_interop_threads())
    elif fw.name == "keras":
        import keras
        import tensorflow as tf

        res.update(
            intra=tf.config.threading.get_intra_op_parallelism_threads(),
            inter=tf.config.threading.get_inter_op_parallelism_threads(),
            keras_backend=keras.backend.backend(),
            policy=keras.mixed_precision.global_policy().name,
        )
    elif fw.name.startswith("keras-"):
        import sys

        import keras

        res.update(
            keras_backend=keras.backend.backend(),
            policy=keras.mixed_precision.global_policy().name,
            tensorflow_imported="tensorflow" in sys.modules,
        )
        if fw.name == "keras-torch":
            import torch

            res.update(intra=torch.get_num_threads(), inter=torch.get_num_interop_threads())
    elif fw.name == "jax":
        import jax

        res.update(backend=jax.default_backend())
    # a tiny model still builds, predicts and trains under these settings (mixed precision included)
    from medbench.config import OptimizerConfig

    model = fw.build_model(
        "simple_cnn", num_classes=3, in_channels=1, image_size=8, widths=(4,), hidden=4, dropout=0.0
    )
    images = np.random.default_rng(0).standard_normal((4, 8, 8, 1), dtype=np.float32)
    logits = fw.predict(model, images)
    res.update(logits_shape=list(logits.shape), logits_dtype=str(logits.dtype))
    trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="adam", lr=1e-2))
    res["losses"] = [trainer.train_step(images, np.array([0, 1, 2, 0])).loss for _ in range(3)]
    res["trained_logits_finite"] = bool(np.isfinite(trainer.eval_logits(images)).all())
    return res


def task_compile(fw, task, arrays, out):
    """The configured trainer (``runtime.compile`` as the job set it) beside one with the other choice, from
    the same weights on the same batches; plus what the framework itself says of the settings."""
    import dataclasses

    from medbench.config import OptimizerConfig

    res = {"xla_flags": os.environ.get("XLA_FLAGS", ""), **_settings_read_back()}
    rng = np.random.default_rng(0)
    images = rng.standard_normal((8, 12, 12, 1), dtype=np.float32)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    build = {
        "num_classes": 3,
        "in_channels": 1,
        "image_size": 12,
        "widths": (4, 8),
        "hidden": 8,
        "dropout": 0.0,
    }
    optimizer = OptimizerConfig(name="adam", lr=1e-2)
    configured = fw.build_model("simple_cnn", **build)
    trainers = {"configured": fw.create_trainer(configured, optimizer=optimizer)}
    if task.get("other") is not None:  # the other compile choice, on a copy of the same weights
        other = fw.build_model("simple_cnn", **build)
        fw.load_state_dict(other, fw.state_dict(configured))
        settings = fw.runtime.settings.model_copy(update={"compile": task["other"]})
        rt = dataclasses.replace(fw.runtime, settings=settings)
        trainers["other"] = fw.module("train").create_trainer(
            other,
            rt,
            optimizer=optimizer,
            loss="cross_entropy",
            label_smoothing=0.0,
            class_weights=None,
            plan=None,
        )
    for name, trainer in trainers.items():
        res[f"{name}_losses"] = [trainer.train_step(images, labels).loss for _ in range(task.get("steps", 3))]
        out[f"{name}_logits"] = trainer.eval_logits(images)
        res[f"{name}_compiled"] = _compiled(trainer)
    return res


def _settings_read_back() -> dict:
    """The performance settings as the framework itself holds them (not as configure reports them)."""
    import sys

    res = {"tf_onednn_env": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}
    if "torch" in sys.modules:
        import torch

        res["mkldnn_enabled"] = torch.backends.mkldnn.enabled
    if "tensorflow" in sys.modules:
        from tensorflow.python.util import _pywrap_util_port

        res["tf_mkl_enabled"] = bool(_pywrap_util_port.IsMklEnabled())
    return res


def _compiled(trainer) -> str:
    """How the trainer's step runs, read off the objects it holds."""
    step = getattr(trainer, "_step", None)
    forward = getattr(trainer, "_forward", None)
    forward = getattr(step, "_forward", None) if forward is None else forward
    if forward is not None:  # torch and Keras on torch: a torch.compile wrapper, or the plain callable
        return (
            "torch.compile"
            if hasattr(forward, "_torchdynamo_orig_callable") or type(forward).__name__ == "OptimizedModule"
            else "eager"
        )
    inner = getattr(step, "_step", step)
    if hasattr(inner, "lower"):  # jax.jit's wrapper (the JAX trainer's own step too)
        return "jax.jit"
    if hasattr(inner, "experimental_get_compiler_ir"):  # a tf.function
        return "xla" if getattr(inner, "_jit_compile", None) else "tf.function"
    return "eager"


def task_profile(fw, task, arrays, out):
    """A trainer profiled between its steps (step breakdown, top operations) and its twin, not profiled,
    take the same steps from the same start, with shared masks and with the framework's own dropout: their
    losses and weights, compared bit for bit in the test, say whether profiling changed anything."""
    from medbench.config import OptimizerConfig
    from medbench.data.noise import NoiseStream
    from medbench.frameworks.families import resolve_model
    from medbench.frameworks.noise import noise_sites

    images, labels = arrays["images"], arrays["labels"]
    build = task["build"]
    family, options = resolve_model(build["model"], build.get("options", {}))
    stream = NoiseStream(noise_sites(family, options, image_size=build["image_size"]), seed=0)
    res = {}
    for noise in ("shared", "native"):
        for twin in ("profiled", "plain"):
            _reset_global_generators()  # torch's dropout (and Keras' on torch) draws from the global one
            model = _build(fw, task)
            trainer = fw.create_trainer(model, optimizer=OptimizerConfig(name="adam", lr=1e-2))
            losses = []
            for step in range(3):
                masks = stream.masks(0, step, len(images)) if noise == "shared" else None
                if step == 1 and twin == "profiled":
                    res[f"{noise}/breakdown"] = fw.step_breakdown(
                        trainer, images, labels, lr=1e-2, noise=masks
                    )
                    res[f"{noise}/top"] = fw.top_operations(
                        trainer, images, labels, lr=1e-2, noise=masks, steps=2
                    )
                losses.append(trainer.train_step(images, labels, lr=1e-2, noise=masks).loss)
            res[f"{noise}/{twin}/losses"] = losses
            _save_state(out, f"{noise}/{twin}/", fw.state_dict(trainer.model))
    return res


def _reset_global_generators() -> None:
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(0)
