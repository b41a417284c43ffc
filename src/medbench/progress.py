"""The display of a training run: on a terminal a progress bar per epoch and a line when each ends; off a
terminal (a log file, a pipe) only the lines, on stdout, each with the run's elapsed time and ETA."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class EpochProgress:
    """A bar per epoch showing the running loss, images/s and ETA; quiet mode shows nothing."""

    def __init__(self, epochs: int, steps_per_epoch: int, *, title: str, quiet: bool = False):
        self.epochs = epochs
        self.steps = steps_per_epoch
        self.title = title
        self.quiet = quiet
        self.console = Console(stderr=True)
        # Off a terminal a bar is noise (or nothing); the per-epoch lines go where the log is: stdout.
        self.live = self.console.is_terminal and Console().is_terminal
        self.lines = self.console if self.live else Console(width=10_000)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:,.0f} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=quiet or not self.live,
        )
        self._task = None
        self._loss_sum = 0.0
        self._count = 0
        self._images = 0
        self._started = 0.0
        self._t0 = time.perf_counter()
        self._first_epoch: int | None = None

    def __enter__(self) -> EpochProgress:
        self._t0 = time.perf_counter()
        if not self.quiet:
            self.lines.print(f"[bold]training[/] {self.title}", highlight=False)
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int) -> None:
        self._loss_sum, self._count, self._images = 0.0, 0, 0
        self._started = time.perf_counter()
        if self._first_epoch is None:
            self._first_epoch = epoch  # a resumed run starts late: its ETA counts only the epochs run here
        description = f"epoch {epoch + 1}/{self.epochs}"
        if self._task is None:
            self._task = self._progress.add_task(description, total=self.steps, loss=0.0, ips=0.0)
        else:
            self._progress.reset(self._task, total=self.steps, description=description, loss=0.0, ips=0.0)

    def step(self, loss: float, images: int) -> None:
        self._loss_sum += loss
        self._count += 1
        self._images += images
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        self._progress.update(
            self._task, advance=1, loss=self._loss_sum / self._count, ips=self._images / elapsed
        )

    def end_epoch(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        self.lines.print(self.line(record, time.perf_counter() - self._started), highlight=False)

    def line(self, record: dict[str, Any], took: float) -> str:
        """``epoch 3/100  loss 0.41  val ACC 88.20%  val AUC 97.91%  lr 1.00e-03  12.3 s  elapsed ... ETA``."""
        val = "  ".join(
            f"val {k[4:].upper()} {v * 100:.2f}%"
            for k, v in record.items()
            if k.startswith("val_") and v is not None
        )
        done = record["epoch"] - (self._first_epoch or 0)
        elapsed = time.perf_counter() - self._t0
        left = self.epochs - record["epoch"]
        eta = elapsed / max(done, 1) * left
        return (
            f"{self.title}  epoch {record['epoch']:>3}/{self.epochs}  loss {record['train_loss']:.4f}  {val}  "
            f"lr {record['lr']:.2e}  {took:.1f} s  elapsed {_minutes(elapsed)}  ETA {_minutes(eta)}"
        )

    def note(self, text: str) -> None:
        if not self.quiet:
            self.lines.print(text, highlight=False)


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"
