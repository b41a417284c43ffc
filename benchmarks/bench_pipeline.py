"""How fast the numpy batch pipeline serves batches: it must never be what a GPU waits for.

Prints batches/s and images/s for batch 128 at 28 px (the real ``pathmnist_subset.npz``) and at 224 px
(28 px upsampled, as in MedMNIST's 224 rows, and a generated 224 px file that is memory-mapped, as the
12 GB ``pathmnist_224.npz`` would be), each without and with augmentation, both built on the calling thread
("sync") and by background threads ("threads=N"). The consumer does nothing, so these are the pipeline's
ceilings. Each figure is measured ``--repeats`` times; the best and the median are printed, since on a
shared machine the best is the closest to the pipeline's own cost (the load average is printed too), as
is the process's CPU time per batch, which other tenants hardly change.
Run from the repository root::

    .venv/bin/python benchmarks/bench_pipeline.py [--workers 1 4] [--min-time 1] [--csv out.csv]
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medbench.data.loading import MedMNISTData, load_dataset
from medbench.data.pipeline import BatchPipeline, make_pipeline
from medbench.data.transforms import Augment

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "medmnist"
AUGMENT = Augment(hflip=True, vflip=True, crop_padding=4, rotate_degrees=15)
AUGMENT_NO_ROTATION = Augment(hflip=True, vflip=True, crop_padding=4)


def environment() -> dict[str, str]:
    """The machine and library versions the figures belong to."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cores": str(os.cpu_count()),
        "usable_cores": str(usable),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": " ".join(f"{x:.1f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "",
    }


def endless(pipeline: BatchPipeline) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches across epochs, so short splits can be timed for as long as asked."""
    epoch = 0
    while True:
        yield from pipeline.epoch(epoch)
        epoch += 1


def measure(pipeline: BatchPipeline, *, warmup: int, min_batches: int, min_time: float) -> dict[str, float]:
    """Times batches after ``warmup`` ones until both ``min_batches`` and ``min_time`` seconds are reached."""
    batches = endless(pipeline)
    try:
        for _ in range(warmup):
            next(batches)
        n_batches = n_images = 0
        start, cpu_start = time.perf_counter(), time.process_time()
        while n_batches < min_batches or time.perf_counter() - start < min_time:
            images, _ = next(batches)
            n_batches += 1
            n_images += len(images)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        batches.close()  # joins the prefetch threads before the next case starts
    return {
        "batches_per_s": n_batches / elapsed,
        "images_per_s": n_images / elapsed,
        "ms_per_batch": 1e3 * elapsed / n_batches,
        # CPU time of the whole process (all threads) per batch: what a batch costs, whatever else the
        # machine is running; wall-clock figures on a busy machine mostly measure the other tenants.
        "cpu_ms_per_batch": 1e3 * cpu / n_batches,
    }


def generated_224(folder: Path, n_train: int) -> MedMNISTData:
    """A 224 px PathMNIST-shaped file, loaded through the memory-mapped path."""
    rng = np.random.default_rng(0)
    # Smooth-ish random images (a coarse pattern, upsampled) so that they look a little like tissue tiles.
    coarse = rng.integers(0, 256, (n_train, 28, 28, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    images ^= rng.integers(0, 16, images.shape, dtype=np.uint8)
    labels = rng.integers(0, 9, (n_train, 1), dtype=np.uint8)
    empty_images, empty_labels = images[:0], labels[:0]
    path = folder / "pathmnist_224_generated.npz"
    # Stored, not deflated: writing is then quick; the loader unpacks either kind the same way.
    np.savez(
        path,
        train_images=images,
        val_images=empty_images,
        test_images=empty_images,
        train_labels=labels,
        val_labels=empty_labels,
        test_labels=empty_labels,
    )
    return load_dataset("pathmnist", 224, path=path, mmap_threshold=64 * 2**20, cache_dir=folder / "cache")


def cases(data_28: MedMNISTData, data_224: MedMNISTData) -> list[tuple[str, MedMNISTData, dict]]:
    return [
        ("28px pathmnist_subset", data_28, {}),
        ("28px pathmnist_subset +aug", data_28, {"augment": AUGMENT}),
        ("28->224 nearest", data_28, {"resize_to": 224}),
        ("28->224 nearest +flip/crop", data_28, {"resize_to": 224, "augment": AUGMENT_NO_ROTATION}),
        ("28->224 nearest +aug", data_28, {"resize_to": 224, "augment": AUGMENT}),
        ("28->224 bilinear", data_28, {"resize_to": 224, "resize_method": "bilinear"}),
        ("224px generated, mmap", data_224, {}),
        ("224px generated, mmap +aug", data_224, {"augment": AUGMENT}),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data-file", type=Path, default=SHARED / "pathmnist_subset.npz")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="thread counts to try")
    parser.add_argument("--prefetch", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--min-batches", type=int, default=10)
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per figure")
    parser.add_argument("--n-224", type=int, default=1024, help="train images in the generated 224 px file")
    parser.add_argument("--csv", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)

    env = environment()
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    print(f"batch size {args.batch_size}; augmentation = {AUGMENT.to_dict()}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="medbench-bench-") as tmp:
        data_28 = load_dataset("pathmnist", path=args.data_file, cache_dir=Path(tmp) / "cache")
        data_224 = generated_224(Path(tmp), args.n_224)
        header = f"{'case':32} {'mode':10} {'batches/s':>10} {'images/s':>10} {'ms/batch':>9}"
        print(f"{header} {'median img/s':>13} {'cpu ms/batch':>13}")
        for name, data, settings in cases(data_28, data_224):
            modes = [("sync", {"prefetch": 0})]
            modes += [
                (f"threads={w}", {"prefetch": max(args.prefetch, w), "workers": w}) for w in args.workers
            ]
            for mode, threading in modes:
                pipeline = make_pipeline(data, "train", batch_size=args.batch_size, **settings, **threading)
                runs = [
                    measure(
                        pipeline, warmup=args.warmup, min_batches=args.min_batches, min_time=args.min_time
                    )
                    for _ in range(args.repeats)
                ]
                best = max(runs, key=lambda r: r["images_per_s"])
                median = float(np.median([r["images_per_s"] for r in runs]))
                cpu_ms = min(r["cpu_ms_per_batch"] for r in runs)
                result = {**best, "median_images_per_s": median, "cpu_ms_per_batch": cpu_ms}
                rows.append(
                    {"case": name, "mode": mode, **{k: round(v, 2) for k, v in result.items()}, **env}
                )
                print(
                    f"{name:32} {mode:10} {best['batches_per_s']:10.1f} {best['images_per_s']:10.0f} "
                    f"{best['ms_per_batch']:9.1f} {median:13.0f} {cpu_ms:13.1f}",
                    flush=True,
                )
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
