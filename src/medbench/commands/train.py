"""``medbench train``: one model, one framework, one dataset; each seed in its own process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import tomllib
import typer
from rich.markup import escape
from rich.table import Table

from medbench import interrupt
from medbench.commands.app import app, console
from medbench.config import parse_config, set_dotted, stored_config
from medbench.errors import ConfigError
from medbench.paths import runs_dir
from medbench.preflight import check_resume_folder, check_train_config, check_writable_folder

Framework = typer.Option(
    "--framework", "-f", help="torch, jax, keras (Keras on TensorFlow), keras-jax or keras-torch."
)


def _load_config_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"Config file {path} does not exist.", "Check the path.")
    if path.is_dir():
        raise ConfigError(f"Config file {path} is a folder.", "Pass a TOML or JSON file inside it.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"Config file {path} is not a text file.", "Pass a TOML or JSON file.") from None
    try:
        return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(
            f"Config file {path} cannot be parsed: {err}.", "Fix its syntax (TOML or JSON)."
        ) from None


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"Override {text!r} is not KEY=VALUE.", "Write e.g. --set recipe.epochs=5.")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string such as adamw
    except RecursionError:  # brackets nested thousands deep
        raise ConfigError(
            f"The value of --set {key.strip()[:60]} is nested too deeply.", "Give a plain value or list."
        ) from None
    return key.strip(), value


def build_config(base: dict[str, Any], flags: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Config file < command-line flags < ``--set`` overrides."""

    config = base
    for dotted, value in flags.items():
        if value is not None:
            config = set_dotted(config, dotted, value)
    for text in overrides:
        config = set_dotted(config, *_parse_override(text))
    return config


@app.command("train")
def train_command(
    framework: Annotated[str | None, Framework] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A model from `medbench models`.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="A dataset flag, e.g. pathmnist.")
    ] = None,
    size: Annotated[int | None, typer.Option("--size", "-s", help="Image size: 28, 64, 128 or 224.")] = None,
    data_file: Annotated[
        Path | None,
        typer.Option("--data-file", help="An npz in the official layout (not necessarily official)."),
    ] = None,
    root: Annotated[Path | None, typer.Option("--root", help="Data folder (default ~/.medmnist).")] = None,
    epochs: Annotated[int | None, typer.Option("--epochs", "-e")] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", "-b")] = None,
    lr: Annotated[float | None, typer.Option("--lr")] = None,
    optimizer: Annotated[str | None, typer.Option("--optimizer", help="sgd, adam or adamw.")] = None,
    schedule: Annotated[str | None, typer.Option("--schedule", help="step, cosine or constant.")] = None,
    weight_decay: Annotated[float | None, typer.Option("--weight-decay")] = None,
    label_smoothing: Annotated[float | None, typer.Option("--label-smoothing")] = None,
    early_stopping: Annotated[
        int | None, typer.Option("--early-stopping", help="Stop after N epochs without a better val AUC.")
    ] = None,
    augment: Annotated[bool, typer.Option("--augment", help="Flips, ±15° rotations and 2 px crops.")] = False,
    resize_to: Annotated[int | None, typer.Option("--resize-to", help="Upsample inputs, e.g. 224.")] = None,
    resize_method: Annotated[
        str | None, typer.Option("--resize-method", help="nearest or bilinear (with --resize-to).")
    ] = None,
    to_rgb: Annotated[bool, typer.Option("--to-rgb", help="Repeat grey images to three channels.")] = False,
    normalize: Annotated[
        str | None, typer.Option("--normalize", help="official, dataset, imagenet, pretrained or none.")
    ] = None,
    finetune: Annotated[
        str | None,
        typer.Option(
            "--finetune",
            help="A fine-tuning configuration: linear_probe, top1, top2, full, full_discriminative, "
            "full_frozen_bn or gradual (fields: --set finetune.*).",
        ),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained",
            help="Start from torchvision's ImageNet weights (downloaded once into the torch hub cache); "
            "also sets --to-rgb and the weights' own normalisation.",
        ),
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option("--weights", help="A local checkpoint (.pth/.safetensors) instead of the download."),
    ] = None,
    head: Annotated[
        str | None, typer.Option("--head", help="linear or mlp (ResNet, EfficientNetV2).")
    ] = None,
    class_weights: Annotated[
        bool, typer.Option("--class-weights", help="Class-weighted loss (balanced weights).")
    ] = False,
    balanced_sampler: Annotated[
        bool, typer.Option("--balanced-sampler", help="Draw training images class-balanced.")
    ] = False,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            help="shared (default): every framework starts from the same weights, drawn by PyTorch's rules "
            "from the seed; native: each framework's own draw.",
        ),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option(
            "--noise",
            help="shared (default): the same dropout/stochastic-depth masks in every framework, per "
            "(seed, epoch, step); native: each framework's own RNG.",
        ),
    ] = None,
    precision: Annotated[str | None, typer.Option("--precision", help="fp32, bf16 or fp16.")] = None,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Intra-op threads for the framework.")
    ] = None,
    seeds: Annotated[
        list[int] | None, typer.Option("--seed", help="Seed(s); repeat for several runs.")
    ] = None,
    max_steps: Annotated[
        int | None, typer.Option("--max-steps-per-epoch", help="Cap the steps per epoch (smoke runs).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", "-c", help="A TOML or JSON run config.")
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override any field: --set recipe.optimizer.name=adamw."),
    ] = None,
    store: Annotated[
        Path | None, typer.Option("--store", help="Results database (default ~/.medbench).")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Folder for run checkpoints.")] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue an interrupted run from its folder.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train a model with the official MedMNIST recipe (or yours); each run in a fresh process, stored."""
    from medbench.jobs import train_job
    from medbench.runner import run_job

    if resume is not None:
        job = _resume_job(resume, store)
        if job is None:
            return  # already completed: nothing to do
        jobs = [job]
    else:
        flags = {
            "framework": framework,
            "model": model,
            "data.dataset": dataset,
            "data.size": size,
            "data.data_file": str(data_file) if data_file else None,
            "data.root": str(root) if root else None,
            "recipe.epochs": epochs,
            "recipe.batch_size": batch_size,
            "recipe.optimizer.lr": lr,
            "recipe.optimizer.name": optimizer,
            "recipe.schedule.kind": schedule,
            "recipe.optimizer.weight_decay": weight_decay,
            "recipe.label_smoothing": label_smoothing,
            "recipe.early_stopping_patience": early_stopping,
            "recipe.max_steps_per_epoch": max_steps,
            "data.resize_to": resize_to,
            "data.resize_method": resize_method,
            "data.normalize": normalize or ("pretrained" if pretrained else None),
            "data.to_rgb": True if (to_rgb or pretrained) else None,
            "init_weights": str(weights) if weights else None,
            "recipe.class_weights": "balanced" if class_weights else None,
            "recipe.sampler": "balanced" if balanced_sampler else None,
            "init": init,
            "noise": noise,
            "runtime.precision": precision,
            "runtime.threads": threads,
        }
        if finetune:
            from medbench.finetune import preset

            flags["finetune"] = preset(finetune).model_dump(mode="json")
        if pretrained:
            flags["finetune.pretrained"] = "imagenet"
        if head:
            flags["model_options.head"] = head
        if augment:
            flags["data.augment"] = {"hflip": True, "vflip": True, "rotate_degrees": 15.0, "crop_padding": 2}
        base = _load_config_file(config_file) if config_file else {}
        raw = build_config(base, flags, overrides or [])
        configs = [parse_config(set_dotted(raw, "seed", s)) for s in (seeds or [raw.get("seed", 0)])]
        for config in configs:  # refused here, before any run row or folder exists
            check_train_config(config)
        folder = check_writable_folder(output or runs_dir(), option="--output (or $MEDBENCH_HOME)")
        jobs = [train_job(c, runs_dir=folder) for c in configs]
    records = []
    for job in jobs:
        interrupt.keep(
            f"The run folder {job['run_dir']} was kept; continue it from its last finished epoch with "
            f"`medbench train --resume {job['run_dir']}`."
        )
        records.append(run_job(job, store_path=store, quiet=quiet))
    _print_summary(records)
    failed = [r for r in records if r.status != "completed"]
    if failed:
        for r in failed:
            console.print(
                f"[red]{r.status}[/] run {r.run_id[:8]}: {escape(str(r.failure_reason))}", highlight=False
            )
        raise typer.Exit(1)


def _resume_job(run_dir: Path, store_path: Path | None) -> dict[str, Any] | None:
    """The job that continues the run in ``run_dir`` under its own run id, or None if it is completed."""
    from medbench.jobs import train_job
    from medbench.results import ResultsStore
    from medbench.training import CHECKPOINT_META, PROGRESS_FILE, Progress

    meta_path = run_dir / CHECKPOINT_META
    if (run_dir / PROGRESS_FILE).exists():
        check_resume_folder(run_dir)  # refuses a damaged checkpoint.json or progress.json in one line
    if not meta_path.is_file():
        raise ConfigError(
            f"{run_dir} is not a resumable run folder (no {CHECKPOINT_META}).",
            "Pass the folder printed when the run was interrupted.",
        )
    try:
        meta = json.loads(meta_path.read_text())
        # a run folder from before `init`/`noise` existed resumes as it started: native
        config = stored_config(meta["config"])
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(
            f"{meta_path} is damaged ({type(err).__name__}: {err}), so the run cannot be resumed.",
            "Train the run again from the start.",
        ) from None
    # A run that died in its first epoch has no progress yet: it starts again, in its own row.
    progress = Progress.load(run_dir) if (run_dir / PROGRESS_FILE).exists() else Progress()
    store = ResultsStore(store_path)
    run_id = progress.run_id or meta.get("run_id") or _run_id_from_folder(run_dir, store)
    record = _stored_run(store, run_id)
    if record is not None and record.status == "completed":
        from rich.markup import escape

        acc = (record.metrics or {}).get("test_acc")
        result = f", test ACC {acc:.4f}" if isinstance(acc, (int, float)) else ""
        console.print(
            f"Run {record.run_id[:8]} in {escape(str(run_dir))} is already completed ({progress.epochs_done} "
            f"epoch(s){result}); nothing to resume.",
            highlight=False,
        )
        return None
    check_train_config(config)  # its data file may have moved since
    return train_job(config, runs_dir=run_dir.parent, run_dir=run_dir, resume=True, run_id=run_id)


def _stored_run(store, run_id: str | None):
    from medbench.results import RunNotFoundError

    if run_id is None:
        return None
    try:
        return store.get_run(run_id)
    except RunNotFoundError:
        return None


def _run_id_from_folder(run_dir: Path, store) -> str | None:
    """Folders written before the run id was saved in them end in its first 8 hex digits."""
    prefix = run_dir.name.rsplit("-", 1)[-1]
    if len(prefix) != 8 or not set(prefix) <= set("0123456789abcdef"):
        return None
    record = _stored_run(store, prefix)
    return record.run_id if record is not None else None


def _fmt(value: Any, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _print_summary(records) -> None:
    table = Table(title="training runs")
    for column in (
        "run",
        "framework",
        "model",
        "data",
        "seed",
        "status",
        "test ACC",
        "test AUC",
        "s/epoch",
        "img/s",
    ):
        table.add_column(
            column,
            justify="right" if column in ("seed", "test ACC", "test AUC", "s/epoch", "img/s") else "left",
        )
    for r in records:
        m, t = r.metrics or {}, r.timings or {}
        table.add_row(
            r.run_id[:8],
            r.framework,
            r.model,
            f"{r.dataset} {r.size}px",
            str(r.seed),
            r.status,
            _fmt(m.get("test_acc")),
            _fmt(m.get("test_auc")),
            _fmt(t.get("train_s_per_epoch"), 2),
            _fmt(t.get("steady_images_per_s"), 0),
        )
    console.print(table)
    for r in records:
        if r.status == "completed":
            console.print(f"checkpoint {r.run_id[:8]}: {r.checkpoint_path}", highlight=False, markup=False)
