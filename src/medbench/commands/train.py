"""``medbench train``: one model, one framework, one dataset; each seed in its own process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from medbench.commands.app import STORE_HELP, app
from medbench.commands.config_input import build_config, load_config_file
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note, plain
from medbench.config import RecipeConfig
from medbench.errors import ConfigError

PROFILE_HELP = (
    "Also list the ten costliest operations of a training step by the framework's own profiler "
    "(profile.json in the run folder, and the report's profile section). Every run records where its step "
    "goes (data, host-to-device, forward, backward, optimizer); this adds the operations. Changes no result."
)
_RECIPE = RecipeConfig()
_OPT = _RECIPE.optimizer
# What --augment turns on; its help text names the same three.
_AUGMENT = {"hflip": True, "vflip": True, "rotate_degrees": 15.0, "crop_padding": 2}
Framework = typer.Option(
    "--framework",
    "-f",
    help="torch, jax, keras (Keras on TensorFlow), keras-jax or keras-torch. Default: torch.",
)


@app.command("train")
def train_command(
    framework: Annotated[str | None, Framework] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="A model from `medbench models`. Default: simple_cnn.")
    ] = None,
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            "-d",
            help="A dataset flag, e.g. bloodmnist (see `medbench datasets`). Required, unless --config, "
            "--set data.dataset=... or --resume gives it.",
        ),
    ] = None,
    size: Annotated[
        int | None, typer.Option("--size", "-s", help="Image size: 28, 64, 128 or 224. Default: 28.")
    ] = None,
    data_file: Annotated[
        Path | None,
        typer.Option(
            "--data-file",
            help="An npz in the official layout (not necessarily official). Default: the official file.",
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option("--root", help="Data folder. Default: $MEDBENCH_DATA_ROOT, else ~/.medmnist."),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option("--epochs", "-e", help=f"Training epochs. Default: {_RECIPE.epochs} (official)."),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", "-b", help=f"Training batch size. Default: {_RECIPE.batch_size}."),
    ] = None,
    lr: Annotated[float | None, typer.Option("--lr", help=f"Learning rate. Default: {_OPT.lr:g}.")] = None,
    optimizer: Annotated[
        str | None, typer.Option("--optimizer", help=f"sgd, adam or adamw. Default: {_OPT.name}.")
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="step (x0.1 at 50% and 75% of the epochs), cosine or constant. Default: step.",
        ),
    ] = None,
    weight_decay: Annotated[
        float | None, typer.Option("--weight-decay", help=f"Weight decay. Default: {_OPT.weight_decay:g}.")
    ] = None,
    label_smoothing: Annotated[
        float | None,
        typer.Option(
            "--label-smoothing", help=f"Label smoothing of the loss. Default: {_RECIPE.label_smoothing:g}."
        ),
    ] = None,
    early_stopping: Annotated[
        int | None,
        typer.Option("--early-stopping", help="Stop after N epochs without a better val AUC. Default: off."),
    ] = None,
    augment: Annotated[
        bool,
        typer.Option(
            "--augment/--no-augment", help="Flips, ±15° rotations and 2 px crops (off: the official recipe)."
        ),
    ] = False,
    resize_to: Annotated[
        int | None, typer.Option("--resize-to", help="Upsample inputs, e.g. 224. Default: no resizing.")
    ] = None,
    resize_method: Annotated[
        str | None,
        typer.Option("--resize-method", help="nearest or bilinear (with --resize-to). Default: nearest."),
    ] = None,
    to_rgb: Annotated[
        bool, typer.Option("--to-rgb/--no-to-rgb", help="Repeat grey images to three channels.")
    ] = False,
    normalize: Annotated[
        str | None,
        typer.Option(
            "--normalize",
            help="official (mean = std = 0.5), dataset, imagenet, pretrained or none. Default: official "
            "(pretrained with --pretrained).",
        ),
    ] = None,
    finetune: Annotated[
        str | None,
        typer.Option(
            "--finetune",
            help="A fine-tuning configuration: linear_probe, top1, top2, full, full_discriminative, "
            "full_frozen_bn or gradual (fields: `medbench finetune-presets`). Default: none (all layers "
            "train).",
        ),
    ] = None,
    pretrained: Annotated[
        bool,
        typer.Option(
            "--pretrained/--no-pretrained",
            help="Start from torchvision's ImageNet weights (downloaded once into the torch hub cache); "
            "also sets --to-rgb and the weights' own normalisation.",
        ),
    ] = False,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="A local checkpoint (.pth/.safetensors) instead of the download. Default: none.",
        ),
    ] = None,
    head: Annotated[
        str | None, typer.Option("--head", help="linear or mlp (ResNet, EfficientNetV2). Default: linear.")
    ] = None,
    class_weights: Annotated[
        bool,
        typer.Option("--class-weights/--no-class-weights", help="Class-weighted loss (balanced weights)."),
    ] = False,
    balanced_sampler: Annotated[
        bool,
        typer.Option("--balanced-sampler/--no-balanced-sampler", help="Draw training images class-balanced."),
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
    precision: Annotated[
        str | None, typer.Option("--precision", help="fp32, bf16 or fp16. Default: fp32.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="Intra-op threads for the framework. Default: the framework's own choice."
        ),
    ] = None,
    seeds: Annotated[
        list[int] | None,
        typer.Option("--seed", help="Seed(s); repeat for several runs, one after another. Default: 0."),
    ] = None,
    max_steps: Annotated[
        int | None,
        typer.Option("--max-steps-per-epoch", help="Cap the steps per epoch (smoke runs). Default: no cap."),
    ] = None,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            help="A TOML or JSON run config (the fields of RunConfig); flags and --set go on top.",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override any run-config field by its dotted path (repeatable): "
            "--set recipe.optimizer.name=adamw, --set recipe.schedule.milestones=[0.3,0.6].",
        ),
    ] = None,
    store: Annotated[Path | None, typer.Option("--store", help=STORE_HELP)] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for run checkpoints. Default: $MEDBENCH_HOME/runs."),
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue an interrupted run from its folder.")
    ] = None,
    fmt: FormatOption = OutputFormat.table,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet", "-q", help="No progress: the worker's output goes to a log in its run folder."
        ),
    ] = False,
    profile: Annotated[bool, typer.Option("--profile", help=PROFILE_HELP)] = False,
) -> None:
    """Train a model with the official MedMNIST recipe (or yours); each run in a fresh process, stored.

    The defaults are the official MedMNIST recipe: Adam lr 0.001, batch 128, 100 epochs, lr x0.1 at 50% and
    75%, mean = std = 0.5, no augmentation, the checkpoint with the best validation AUC. Off a terminal
    (a log file) progress is one line per epoch.

    \b
    Examples:
      medbench train -f jax -m resnet18 -d pathmnist            # the official recipe, 100 epochs
      medbench train -f torch -d breastmnist -e 3 --seed 0 --seed 1
      medbench train -f keras -d bloodmnist --data-file ./blood.npz --set recipe.optimizer.name=adamw
    """
    from medbench import api

    quiet = quiet or fmt is not OutputFormat.table  # stdout holds the table alone: progress goes to a log
    if resume is not None:
        job, record = api.resume_job(resume, store=store)
        if job is None:  # already completed: nothing to do
            _say_completed(record, resume, fmt)
            return
        jobs = [{**job, "profile": profile}]
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
            # a whole section first, then the fields that refine it
            "finetune": _finetune_fields(finetune),
            "finetune.pretrained": "imagenet" if pretrained else None,
            "model_options.head": head or None,
            "data.augment": _AUGMENT if augment else None,
        }
        raw = build_config(load_config_file(config_file) if config_file else {}, flags, overrides or [])
        _require_dataset(raw)
        configs = [api.make_config(raw, seed=s) for s in (seeds or [raw.get("seed", 0)])]
        jobs = api.train_jobs(
            configs, runs_dir=output, option="--output (or $MEDBENCH_HOME)", profile=profile
        )
    records = [api.run_training_job(job, store=store, quiet=quiet) for job in jobs]
    emit(summary_table(records), fmt)
    _say_failures(records, fmt)


def _finetune_fields(name: str | None) -> dict[str, Any] | None:
    """The fields of the --finetune preset ``name``, as the config takes them; None without one."""
    if not name:
        return None
    from medbench.finetune import preset

    return preset(name).model_dump(mode="json")


def _require_dataset(raw: dict[str, Any]) -> None:
    """The config's default dataset is never trained by accident: the user must name one."""
    if not (raw.get("data") or {}).get("dataset"):
        raise ConfigError(
            "No dataset given.",
            "Pass -d/--dataset (e.g. -d bloodmnist; `medbench datasets` lists them), or set "
            "data.dataset in --config.",
        )


def _say_failures(records, fmt: OutputFormat) -> None:
    """One line per run that did not complete, then exit 1."""
    failed = [r for r in records if r.status != "completed"]
    if failed:
        for r in failed:
            note(f"[red]{r.status}[/] run {r.run_id[:8]}: {plain(str(r.failure_reason or ''))}", fmt)
        raise typer.Exit(1)


def _say_completed(record, run_dir: Path, fmt: OutputFormat) -> None:
    from medbench.training import PROGRESS_FILE, Progress

    epochs = Progress.load(run_dir).epochs_done if (run_dir / PROGRESS_FILE).exists() else 0
    acc = (record.metrics or {}).get("test_acc")
    result = f", test ACC {acc * 100:.2f}%" if isinstance(acc, (int, float)) else ""
    note(
        f"Run {record.run_id[:8]} in {plain(str(run_dir))} is already completed ({epochs} epoch(s){result}); "
        "nothing to resume.",
        fmt,
    )


def summary_table(records) -> OutputTable:
    """One row per training run: what it was, how it ended, its test ACC/AUC (percent) and speed."""
    table = OutputTable(
        "training runs",
        [
            Column("run"),
            Column("framework"),
            Column("model"),
            Column("dataset"),
            Column("size", "int"),
            Column("seed", "int"),
            Column("status", styles={"completed": "green", "failed": "red", "interrupted": "red"}),
            Column("test ACC", "percent"),
            Column("test AUC", "percent"),
            Column("s/epoch", "float", 2, key="s_per_epoch"),
            Column("img/s", "float", 0, key="images_per_s"),
            Column("checkpoint"),
        ],
    )
    for r in records:
        m, t = r.metrics or {}, r.timings or {}
        table.add_row(
            r.run_id[:8],
            r.framework,
            r.model,
            r.dataset,
            r.size,
            r.seed,
            r.status,
            m.get("test_acc"),
            m.get("test_auc"),
            t.get("train_s_per_epoch"),
            t.get("steady_images_per_s"),
            r.checkpoint_path,
        )
    return table
