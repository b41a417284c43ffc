"""Using a trained run folder: rebuild its model, evaluate it on any split, predict on image files.

A run folder holds ``checkpoint.json`` (the config, class names and the exact preprocessing) and the best
weights in its framework's own format, so both commands preprocess exactly as training did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medbench.config import RunConfig, RuntimeConfig, parse_config
from medbench.errors import MedbenchError


@dataclass
class LoadedCheckpoint:
    folder: Path
    meta: dict[str, Any]
    config: RunConfig
    framework: Any
    model: Any

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.framework.predict(self.model, images)

    def normalization(self):
        from medbench.data.transforms import Normalization

        norm = self.meta["normalization"]
        return Normalization(norm["mean"], norm["std"], "dataset") if isinstance(norm, dict) else norm


def load_checkpoint(folder: str | Path) -> LoadedCheckpoint:
    """Rebuilds the model of a run folder in its framework and loads its best weights."""
    from medbench.frameworks import get_framework
    from medbench.preflight import read_run_meta, run_folder
    from medbench.training import model_inputs
    from medbench.training.run_folder import best_weights_path

    meta = read_run_meta(folder)  # a missing, empty or truncated checkpoint.json: one clear error
    folder = run_folder(folder)
    config = parse_config(meta["config"])
    fw = get_framework(meta["framework"])
    fw.configure(RuntimeConfig(threads=config.runtime.threads, device=config.runtime.device))
    from medbench.data.registry import get_dataset

    model = fw.build_model(
        config.model,
        seed=config.seed,
        **model_inputs(config, get_dataset(config.data.dataset)),
        **config.model_options,
    )
    fw.load_weights(model, best_weights_path(folder))
    return LoadedCheckpoint(folder, meta, config, fw, model)


def evaluate_checkpoint(
    checkpoint: LoadedCheckpoint,
    split: str,
    *,
    data_file: Path | None = None,
    root: Path | None = None,
    bootstrap: int = 1000,
) -> dict[str, Any]:
    """Official ACC/AUC and the extras of ``split``, preprocessed as in training."""
    from medbench.data.loading import load_dataset
    from medbench.data.pipeline import make_pipeline
    from medbench.training import evaluate_split

    d = checkpoint.config.data
    data = load_dataset(d.dataset, d.size, root=root or d.root, path=data_file or d.data_file)
    if split not in data.splits or len(data[split]) == 0:
        raise MedbenchError(f"The {split} split of {data.provenance.path} is empty.", "Choose another split.")
    batches = make_pipeline(
        data,
        split,
        batch_size=checkpoint.config.recipe.eval_batch_size,
        shuffle=False,
        normalize=checkpoint.normalization(),
        resize_to=d.resize_to,
        resize_method=d.resize_method,
        to_rgb=d.to_rgb,
    )
    metrics = evaluate_split(
        checkpoint.predict, batches, data.info.task, bootstrap=bootstrap, class_names=data.info.labels
    )
    metrics["provenance"] = data.provenance.to_dict()
    return metrics


# ---- prediction on image files ------------------------------------------------------------------------------


class ImageReadError(MedbenchError):
    """An image file that cannot be read or decoded."""


def read_image(path: Path, *, channels: int, size: int) -> np.ndarray:
    """Decodes a PNG/JPEG (any size, grey or colour) to uint8 ``(size, size[, 3])`` like a MedMNIST image.

    The image is converted to the dataset's channels and resized to the side the model was trained on
    (bilinear, with Pillow's antialiasing when shrinking, as MedMNIST built its images from larger ones).
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that: refuse those too, before decoding
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                converted = img.convert("L" if channels == 1 else "RGB")
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file.", "Check the path.") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: a folder, not an image.", "Pass image files.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageReadError(
            f"{path}: refused, it has more pixels than can be decoded safely "
            f"({Image.MAX_IMAGE_PIXELS:,} at most).",
            "Resize it to a few thousand pixels a side first (MedMNIST images are at most 224 px).",
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ImageReadError(f"{path}: not a readable image ({err}).", "Use a PNG or JPEG file.") from None
    if converted.size != (size, size):
        converted = converted.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(converted, dtype=np.uint8)


def read_images(meta: dict[str, Any], paths: list[Path]) -> tuple[list[np.ndarray], list[Path], list[str]]:
    """Decodes every readable image as the run's data (``meta``: its checkpoint.json); each unreadable one
    becomes an error line and the rest go on. Needs no framework, so it runs before a model is loaded."""
    images, kept, errors = [], [], []
    for path in paths:
        try:
            images.append(read_image(path, channels=meta["source_channels"], size=meta["image_size"]))
            kept.append(path)
        except ImageReadError as err:
            errors.append(str(err))
    return images, kept, errors


def predict_files(checkpoint: LoadedCheckpoint, paths: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """Class probabilities for each readable image; unreadable ones become error lines, the rest still run."""
    images, kept, errors = read_images(checkpoint.meta, paths)
    return predict_images(checkpoint, images, kept), errors


def predict_images(
    checkpoint: LoadedCheckpoint, images: list[np.ndarray], kept: list[Path]
) -> list[dict[str, Any]]:
    """Class probabilities of images decoded by :func:`read_images`."""
    from medbench.data.loading import Split
    from medbench.data.pipeline import BatchPipeline
    from medbench.metrics import scores_from_logits

    meta, d = checkpoint.meta, checkpoint.config.data
    if not images:
        return []
    stack = np.stack(images)
    split = Split("predict", stack, np.zeros((len(stack), 1), dtype=np.uint8))
    batches = BatchPipeline(
        split,
        batch_size=64,
        normalize=checkpoint.normalization(),
        resize_to=d.resize_to,
        resize_method=d.resize_method,
        to_rgb=d.to_rgb,
        multi_label=False,
        prefetch=0,
    )
    logits = np.concatenate([checkpoint.predict(x) for x, _ in batches])
    scores = scores_from_logits(logits, meta["task"])
    names = meta["class_names"]
    rows = []
    for path, score in zip(kept, scores, strict=True):
        order = np.argsort(-score)
        rows.append(
            {
                "image": str(path),
                "prediction": names[int(order[0])],
                "probability": float(score[order[0]]),
                "probabilities": {names[i]: float(score[i]) for i in range(len(names))},
            }
        )
    return rows
