"""torchvision's ImageNet weights for medbench's models: the registry, the torch hub cache, and loading.

The checkpoints are torchvision's own (``IMAGENET1K_V1``, from ``download.pytorch.org/models``). Every
back-end names its parameters as torchvision does, so one ``.pth`` serves PyTorch, JAX and Keras alike: it
is read with :func:`medbench.frameworks.checkpoints.read_state_dict` (numpy only, no pickled code runs).

* **Cache.** Files live where torch hub keeps them, ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME``
  defaults to ``$XDG_CACHE_HOME/torch``, i.e. ``~/.cache/torch``), so weights torchvision already fetched
  are reused and the other way round. ``$MEDBENCH_WEIGHTS_MIRROR`` replaces download.pytorch.org.
* **Integrity.** torch hub's rule: the hex digits after the last ``-`` of the file name start the file's
  SHA-256. Downloads are checked before they reach the cache (:func:`medbench.data.url_download.download_url`:
  resume, retries, atomic rename) and a cached file is checked again before it is used.
* **Loading.** The backbone must fit exactly; the classifier head is loaded only when it has the same names
  and shapes as the model's (ImageNet's 1000 classes rarely match), otherwise it stays freshly initialised.

Nothing here imports a framework.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medbench.errors import ChecksumError, ConfigError, DownloadError

MIRROR_ENV_VAR = "MEDBENCH_WEIGHTS_MIRROR"
OFFICIAL_BASE_URL = "https://download.pytorch.org/models"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MIRROR_SCHEMES = ("http://", "https://", "file://")
# torch hub's HASH_REGEX, anchored to the last "-": at least 6 hex digits, so "resnet18-final.pth" carries none
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{6,64})\.[^-]*$")
_WEIGHTS_OPTION = "`--weights PATH` (config: init_weights)"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainedWeights:
    """One published checkpoint and what torchvision says about it (``Weights.meta`` and its transforms)."""

    model: str  # medbench's model name
    torchvision: str  # the torchvision enum member the file belongs to
    url: str
    acc1: float  # ImageNet-1K top-1 accuracy (%), torchvision's figure
    acc5: float
    num_params: int
    file_mb: float  # torchvision's _file_size / _weight_size
    resize_size: int  # the evaluation transform: resize the short side, then centre-crop
    crop_size: int
    interpolation: Literal["bilinear", "bicubic"]
    # medbench's data.normalize that reproduces the transform's mean/std: "imagenet" or "official" (0.5)
    normalize: Literal["imagenet", "official"] = "imagenet"

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[1]

    @property
    def sha256_prefix(self) -> str:
        prefix = hash_prefix(self.filename)
        assert prefix is not None, self.filename  # every registry file name carries one
        return prefix

    @property
    def mean(self) -> tuple[float, ...]:
        return IMAGENET_MEAN if self.normalize == "imagenet" else (0.5, 0.5, 0.5)

    @property
    def std(self) -> tuple[float, ...]:
        return IMAGENET_STD if self.normalize == "imagenet" else (0.5, 0.5, 0.5)


def _torchvision(model: str, enum: str, file: str, **meta: Any) -> PretrainedWeights:
    return PretrainedWeights(model, f"{enum}.IMAGENET1K_V1", f"{OFFICIAL_BASE_URL}/{file}", **meta)


# From torchvision's models/resnet.py and models/efficientnet.py (``IMAGENET1K_V1`` of each). ResNet-50's
# torchvision default is V2 (80.858 %, another recipe); V1 is the classic one and what pretrained=True gave.
# fmt: off
_REGISTRY: dict[str, dict[str, PretrainedWeights]] = {
    "imagenet": {
        w.model: w
        for w in (
            _torchvision(
                "resnet18", "ResNet18_Weights", "resnet18-f37072fd.pth",
                acc1=69.758, acc5=89.078, num_params=11_689_512, file_mb=44.661,
                resize_size=256, crop_size=224, interpolation="bilinear",
            ),
            _torchvision(
                "resnet50", "ResNet50_Weights", "resnet50-0676ba61.pth",
                acc1=76.130, acc5=92.862, num_params=25_557_032, file_mb=97.781,
                resize_size=256, crop_size=224, interpolation="bilinear",
            ),
            _torchvision(
                "efficientnetv2_s", "EfficientNet_V2_S_Weights", "efficientnet_v2_s-dd5fe13b.pth",
                acc1=84.228, acc5=96.878, num_params=21_458_488, file_mb=82.704,
                resize_size=384, crop_size=384, interpolation="bilinear",
            ),
            _torchvision(
                "efficientnetv2_m", "EfficientNet_V2_M_Weights", "efficientnet_v2_m-dc08266a.pth",
                acc1=85.112, acc5=97.156, num_params=54_139_356, file_mb=208.010,
                resize_size=480, crop_size=480, interpolation="bilinear",
            ),
            # ported from the TF original, hence its own mean = std = 0.5 and bicubic resizing
            _torchvision(
                "efficientnetv2_l", "EfficientNet_V2_L_Weights", "efficientnet_v2_l-59c71312.pth",
                acc1=85.808, acc5=97.788, num_params=118_515_272, file_mb=454.573,
                resize_size=480, crop_size=480, interpolation="bicubic", normalize="official",
            ),
        )
    }
}
# fmt: on


# ---- the registry ----------------------------------------------------------------------------------------
def sources() -> list[str]:
    return list(_REGISTRY)


def _source(source: str) -> dict[str, PretrainedWeights]:
    if source not in _REGISTRY:
        raise ConfigError(f"Unknown pretrained weights {source!r}.", f"Choose one of {', '.join(_REGISTRY)}.")
    return _REGISTRY[source]


def list_pretrained(source: str = "imagenet") -> list[str]:
    """The models that have published weights from ``source``, in registry order."""
    return list(_source(source))


def get_pretrained(model: str, source: str = "imagenet") -> PretrainedWeights:
    """The registry entry of ``model``'s ``source`` weights.

    Raises:
        ConfigError: an unknown source, or a model without such weights (the message lists those with them).
    """
    entries = _source(source)
    if model in entries:
        return entries[model]
    close = difflib.get_close_matches(model, entries, n=1)
    hint = f"Did you mean {close[0]}? " if close else ""
    raise ConfigError(
        f"There are no {source} weights for the model {model!r}.",
        f"{hint}Models with {source} weights: {', '.join(entries)}; for any other model, pass your own "
        f"checkpoint with {_WEIGHTS_OPTION}.",
    )


def hash_prefix(filename: str) -> str | None:
    """The SHA-256 prefix a torch hub file name carries (``resnet18-f37072fd.pth`` -> ``f37072fd``), if any."""
    match = _HASH_IN_NAME.search(filename)
    return match.group(1) if match else None


# ---- where the files are -----------------------------------------------------------------------------------
def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``: torch hub's own rule."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.environ.get("TORCH_HOME", default)).expanduser()


def cache_dir() -> Path:
    """Where torch hub (and so torchvision) keeps downloaded checkpoints."""
    return torch_home() / "hub" / "checkpoints"


def cache_path(model: str, source: str = "imagenet") -> Path:
    return cache_dir() / get_pretrained(model, source).filename


def weights_url(entry: PretrainedWeights) -> str:
    """``$MEDBENCH_WEIGHTS_MIRROR/<file name>`` if the mirror is set, else the official URL.

    Raises:
        ConfigError: the mirror is set but is not an http(s):// or file:// URL.
    """
    mirror = os.environ.get(MIRROR_ENV_VAR, "").strip()
    if not mirror:
        return entry.url
    if not mirror.startswith(_MIRROR_SCHEMES):
        raise ConfigError(
            f"{MIRROR_ENV_VAR}={mirror!r} is not a URL.",
            "Set it to the base URL of a folder holding torchvision's checkpoint files, e.g. "
            f"https://example.org/torch-models/, or unset it to download from {OFFICIAL_BASE_URL}.",
        )
    return f"{mirror.rstrip('/')}/{entry.filename}"


# ---- checking ----------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=16)
def _sha256_of(path: str, size: int, mtime_ns: int, inode: int) -> str:
    from medbench.data.checksums import sha256sum

    return sha256sum(path)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, hashed once per process while it is unchanged.

    A run resolves (verifies) and then loads the same file; a 450 MB EfficientNetV2-L is worth hashing once.
    The key has the inode too, so a file replaced by an atomic rename is hashed afresh.
    """
    stat = os.stat(path)
    return _sha256_of(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@dataclass(frozen=True)
class CheckpointCheck:
    """What :func:`verify_checkpoint` found out about one file."""

    path: Path
    sha256: str
    expected_prefix: str | None  # from the file name (torch hub's rule); None when the name carries none
    model: str | None  # the medbench model whose published file this is, by name
    n_tensors: int | None  # None when the hash failed (the file is not read then)

    @property
    def ok(self) -> bool:
        return self.expected_prefix is None or self.sha256.startswith(self.expected_prefix)


def _model_of(filename: str) -> str | None:
    for entries in _REGISTRY.values():
        for entry in entries.values():
            if entry.filename == filename:
                return entry.model
    return None


def verify_checkpoint(path: str | os.PathLike) -> CheckpointCheck:
    """Checks a file against the hash its name carries, then that it is a readable state dict of tensors.

    Raises:
        WeightsError: the file is missing, or its hash is fine but it is not a (safe) state dict.
    """
    from medbench.frameworks.checkpoints import WeightsError, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}.", "Check the path.")
    check = CheckpointCheck(path, file_sha256(path), hash_prefix(path.name), _model_of(path.name), None)
    if not check.ok:
        return check
    return dataclasses.replace(check, n_tensors=len(read_state_dict(path)))


def _usable_cached_copy(path: Path, prefix: str, *, force: bool) -> bool:
    """True when the cached file can be used; a copy that fails its hash is moved aside, not deleted (torch
    hub's cache is shared with torchvision, and the file may be someone's)."""
    from medbench.data.url_download import move_aside

    if not path.is_file():
        return False
    actual = file_sha256(path)
    if actual.startswith(prefix):
        return not force
    aside = move_aside(path)
    logger.warning(
        "%s has SHA-256 %s, which does not start with %s: moved it to %s.", path, actual, prefix, aside.name
    )
    return False


# ---- getting the file --------------------------------------------------------------------------------------
def _by_hand(entry: PretrainedWeights, dest: Path) -> str:
    return (
        f"Download {entry.url} by hand, check that its SHA-256 starts with {entry.sha256_prefix}, and save "
        f"it as {dest} (torch hub's cache, shared with torchvision); or start from a copy stored elsewhere "
        f"with {_WEIGHTS_OPTION}."
    )


def download_pretrained(
    model: str, source: str = "imagenet", *, force: bool = False, progress: bool = True, **kwargs: Any
) -> Path:
    """Makes sure ``model``'s checkpoint is in the cache, verified; downloads it when it is not.

    Args:
        model: a model with published weights (:func:`list_pretrained`).
        source: ``"imagenet"``.
        force: download again even if a verified copy is there, discarding any partial download.
        progress: show a progress bar on stderr.
        **kwargs: passed on to :func:`medbench.data.url_download.download_url` (``retries``, ``timeout``, ...).

    Returns:
        The cached file's path.

    Raises:
        DownloadError: the file could not be downloaded (offline, unreachable, 404); the fix names the URL,
            the exact cache path to save the file at, and ``--weights PATH``.
        ChecksumError: the downloaded bytes fail the hash; nothing was kept.
    """
    from medbench.data.url_download import download_url, part_path

    entry = get_pretrained(model, source)
    dest = cache_dir() / entry.filename
    if _usable_cached_copy(dest, entry.sha256_prefix, force=force):
        return dest
    if force:
        part_path(dest).unlink(missing_ok=True)
    url = weights_url(entry)
    try:
        return download_url(url, dest, sha256=entry.sha256_prefix, progress=progress, **kwargs)
    except (DownloadError, ChecksumError) as err:
        fix = _by_hand(entry, dest)
        if isinstance(err, ChecksumError):
            fix = f"The corrupt download was deleted; run again to retry. If it happens again: {fix}"
        if url != entry.url:
            fix += f" (It was tried from the mirror in ${MIRROR_ENV_VAR}.)"
        raise type(err)(err.problem, fix) from err


def resolve_pretrained(
    model_name: str,
    source: str = "imagenet",
    path: str | os.PathLike | None = None,
    *,
    progress: bool = True,
    **kwargs: Any,
) -> Path:
    """The checkpoint a run starts from: the user's ``path`` if given, else the cached (downloaded) file.

    ``path`` wins (``--weights PATH``), for any model, and must exist; when its name is a published file's,
    its hash is checked as well. Otherwise ``model_name`` needs published weights.

    Raises:
        WeightsError: ``path`` does not exist.
        ChecksumError: ``path`` is named as a published file but is not it.
        ConfigError: an unknown source, or no weights for ``model_name``.
        DownloadError: the file is not cached and could not be downloaded.
    """
    from medbench.frameworks.checkpoints import WeightsError

    _source(source)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"The weights file {path} does not exist.",
                "Check the path, or leave out --weights to use torchvision's ImageNet weights from the cache "
                f"({cache_dir()}).",
            )
        prefix = hash_prefix(path.name) if _model_of(path.name) else None
        if prefix is not None and not (actual := file_sha256(path)).startswith(prefix):
            raise ChecksumError(
                f"{path} is named as torchvision's published file, but its SHA-256 {actual} does not "
                f"start with {prefix}: it is damaged or another file.",
                "Download it again (`medbench weights download MODEL`), or rename it if it is your own.",
            )
        return path
    return download_pretrained(model_name, source, progress=progress, **kwargs)


# ---- loading -----------------------------------------------------------------------------------------------
def _fit_hints(family: str, wrong: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> list[str]:
    """What a user can change when a backbone shape differs: the stem of small inputs, or grey images."""
    hints = []
    for key, (given, own) in wrong.items():
        if len(given) != 4 or given[0] != own[0]:
            continue  # only a first convolution can differ in input channels or kernel alone
        if given[1] == 3 and own[1] != 3:  # only the first convolution sees the image's channels
            hints.append(
                f"The weights expect 3-channel (RGB) images but the model was built for {own[1]} channel(s): "
                "set data.to_rgb=true (--to-rgb) to repeat grey images to RGB."
            )
        if family == "resnet" and key == "conv1.weight" and given[2:] != own[2:]:
            hints.append(
                f"The checkpoint's stem is ImageNet's {given[2]}x{given[3]} conv1, but the model has the "
                f"{own[2]}x{own[3]} small-input stem (the default for images under 64 px): set "
                "model_options.small_input=false, or upscale the images with data.resize_to (e.g. 64 or 224), "
                "which picks the ImageNet stem."
            )
    return hints


def load_pretrained(framework: Any, model: Any, path: str | os.PathLike, *, family: str) -> dict[str, Any]:
    """Loads a torchvision-format checkpoint's backbone into ``model`` (any back-end); the head if it fits.

    Every backbone tensor must be there with the model's shape, and no other (a different depth or width is
    a different network). The head (:data:`medbench.finetune.HEAD_PREFIXES` of ``family``) is loaded only
    when the checkpoint has exactly the model's head names and shapes; otherwise it keeps its fresh
    initialisation, as for 1000 ImageNet classes and a 9-class dataset.

    Args:
        framework: a :class:`medbench.frameworks.base.Backend`.
        model: a model that framework built.
        path: a ``.pth`` (``torch.save`` zip) or ``.safetensors`` file with PyTorch names.
        family: the model family (``resnet``, ``efficientnetv2``, ...).

    Returns:
        ``{"path", "sha256", "loaded": number of tensors copied, "skipped_head": the checkpoint's head
        tensors left out}``.

    Raises:
        WeightsError: the backbone does not fit; the fix says what to change (stem, RGB input, model).
    """
    import numpy as np  # here, not at the top: the CLI imports this module and starts faster without numpy

    from medbench.finetune import HEAD_PREFIXES
    from medbench.frameworks.checkpoints import WeightsError, check_state_dict, is_ignored, read_state_dict

    if family not in HEAD_PREFIXES:
        raise ConfigError(
            f"Pretrained weights do not know the {family} family.", "Use resnet or efficientnetv2."
        )
    path = Path(path)
    state = {k: v for k, v in read_state_dict(path).items() if not is_ignored(k)}
    own = {k: tuple(np.shape(v)) for k, v in framework.state_dict(model).items() if not is_ignored(k)}

    def in_head(key: str) -> bool:
        return key.split(".", 1)[0] in HEAD_PREFIXES[family]

    own_backbone = {k: s for k, s in own.items() if not in_head(k)}
    backbone = {k: v for k, v in state.items() if not in_head(k)}
    try:
        check_state_dict(own_backbone, backbone, strict=True, source=f"The backbone in {path}")
    except WeightsError as err:
        wrong = {
            k: (tuple(np.shape(v)), own[k]) for k, v in backbone.items() if k in own and np.shape(v) != own[k]
        }
        hints = _fit_hints(family, wrong)
        published = _model_of(path.name)
        if not hints and published:
            hints.append(
                f"These are torchvision's weights for {published}: use model {published} with its default "
                "architecture options (or pass other weights with --weights)."
            )
        fallback = (
            "The backbone must be the checkpoint's architecture: check the model name and the options that "
            "shape it (block, layers, variant, small_input, in_channels)."
        )
        raise WeightsError(err.problem, " ".join(hints) or fallback) from None

    own_head = {k: s for k, s in own.items() if in_head(k)}
    head = {k: v for k, v in state.items() if in_head(k)}
    head_fits = set(head) == set(own_head) and all(np.shape(v) == own_head[k] for k, v in head.items())
    chosen = {**backbone, **(head if head_fits else {})}
    framework.load_state_dict(model, chosen, strict=False)  # complete for the backbone, checked above
    return {
        "path": str(path),
        "sha256": file_sha256(path),
        "loaded": len(chosen),
        "skipped_head": [] if head_fits else sorted(head),
    }
