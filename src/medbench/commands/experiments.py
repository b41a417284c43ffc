"""``medbench experiments`` (the shipped grids, with trial counts and a rough time), ``experiments show``
and ``medbench finetune-presets`` (the fine-tuning configurations with their fields)."""

from __future__ import annotations

from typing import Annotated

import typer

from medbench.commands.app import app, console
from medbench.commands.output import Column, FormatOption, OutputFormat, OutputTable, emit, note

experiments_app = typer.Typer(
    name="experiments",
    invoke_without_command=True,
)
app.add_typer(experiments_app, name="experiments")


@experiments_app.callback()
def experiments_command(ctx: typer.Context, fmt: FormatOption = OutputFormat.table) -> None:
    """List the shipped experiments: what each compares, its trials and a rough time on a 2-core CPU.

    The time counts the images each trial trains and evaluates at throughputs measured on a 2-core
    laptop-class CPU (see medbench.estimate); a GPU, another CPU or a busy machine changes it many times.

    \b
    Examples:
      medbench experiments
      medbench experiments show quick          # the file, to copy and edit
      medbench experiments show reference      # every field of the format, commented
    """
    if ctx.invoked_subcommand is not None:
        return
    from medbench import estimate
    from medbench.orchestration.experiments import expand, load_experiment, shipped_experiments

    flops = estimate.cached_flops()
    table = OutputTable(
        f"shipped experiments (`medbench run NAME`); time: rough, on a {estimate.MACHINE}",
        [
            Column("name"),
            Column("trials", "int"),
            Column("frameworks"),
            Column("models"),
            Column("datasets"),
            Column("sizes"),
            Column("seeds", "int"),
            Column("bench"),
            Column("rough time"),
            Column("rough s", "float", 0, key="rough_seconds"),
            Column("description"),
        ],
        caption="`medbench experiments show NAME` prints a file; `medbench run NAME --dry-run` lists its trials.",
    )
    for name, path in shipped_experiments().items():
        spec = load_experiment(path)
        trials = expand(spec)
        seconds, unknown = estimate.experiment_seconds(spec, trials, flops=flops)
        rough = estimate.human(seconds) if not unknown else f">{estimate.human(seconds)} ({unknown} unknown)"
        g = spec.grid
        table.add_row(
            name,
            len(trials),
            ", ".join(g.frameworks),
            ", ".join(g.models),
            ", ".join(g.datasets),
            ", ".join(map(str, g.sizes)),
            len(g.seeds),
            "yes" if spec.measure.bench else "no",
            rough,
            None if unknown else seconds,
            spec.description,
        )
    emit(table, fmt)
    if any(r[8].startswith(">") for r in table.rows):
        note(
            "unknown: no throughput measured for that model; `medbench models` caches FLOPs to scale from.",
            fmt,
        )


@experiments_app.command("show")
def show_command(
    name: Annotated[
        str, typer.Argument(help="A shipped experiment (see `medbench experiments`), 'reference', or a path.")
    ],
) -> None:
    """Print an experiment file as it is: copy it, edit it, run it with `medbench run FILE`.

    `reference` is every field of the format with its default and a comment.

    \b
    Examples:
      medbench experiments show quick
      medbench experiments show reference > my_experiment.toml
    """
    from medbench.orchestration.experiments import resolve_experiment_path

    path = resolve_experiment_path(name)
    console.file.write(path.read_text())
    console.file.flush()


@app.command("finetune-presets")
def finetune_presets_command(fmt: FormatOption = OutputFormat.table) -> None:
    """List the fine-tuning configurations (--finetune NAME, [grid] finetune = [...]) with their fields.

    Each is a set of finetune.* fields; unlisted fields keep their defaults (trainable all, top_stages 1,
    backbone_lr_scale 1, unfreeze_every none, freeze_bn false), and `--set finetune.FIELD=VALUE` changes one.

    \b
    Examples:
      medbench finetune-presets
      medbench finetune-presets --format json
    """
    from medbench.config import FinetuneConfig
    from medbench.finetune import PRESETS, preset

    meaning = {
        "linear_probe": "the head only (backbone frozen, its BatchNorm in inference mode)",
        "top1": "the head and the top stage",
        "top2": "the head and the top two stages",
        "full": "everything",
        "full_discriminative": "everything, the backbone at 0.1 x the learning rate",
        "full_frozen_bn": "everything, every BatchNorm frozen in inference mode",
        "gradual": "the head, then one more stage from the top each epoch (backbone at 0.1 x lr)",
    }
    fields = [f for f in FinetuneConfig.model_fields if f != "pretrained"]
    table = OutputTable(
        "fine-tuning configurations (train --finetune NAME; experiments: [grid] finetune = [...])",
        [
            Column("name"),
            *(Column(f, key=f) for f in fields),
            Column("trains"),
        ],
        caption="Set finetune.pretrained = 'imagenet' (train --pretrained) to start from ImageNet weights.",
    )
    for name in PRESETS:
        config = preset(name)
        table.add_row(name, *(_text(getattr(config, f)) for f in fields), meaning.get(name))
    emit(table, fmt)


def _text(value) -> str | None:
    return None if value is None else str(value).lower() if isinstance(value, bool) else str(value)
