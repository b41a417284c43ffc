"""The live display of a training run: one progress bar per epoch and a summary line when it ends."""

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
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[ips]:,.0f} img/s"),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=quiet,
        )
        self._task = None
        self._loss_sum = 0.0
        self._count = 0
        self._images = 0
        self._started = 0.0

    def __enter__(self) -> EpochProgress:
        if not self.quiet:
            self.console.print(f"[bold]training[/] {self.title}")
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def start_epoch(self, epoch: int) -> None:
        self._loss_sum, self._count, self._images = 0.0, 0, 0
        self._started = time.perf_counter()
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
        elapsed = time.perf_counter() - self._started
        val = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_") and v is not None)
        self.console.print(
            f"epoch {record['epoch']:>3}/{self.epochs}  loss {record['train_loss']:.4f}  {val}  "
            f"lr {record['lr']:.2e}  {elapsed:.1f} s",
            highlight=False,
        )

    def note(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)
