"""Getting a checkpoint: the user's own file, else the cached one, downloaded when it is missing or damaged.

Downloads are checked before they reach the cache (:func:`medbench.data.url_download.download_url`: resume,
retries, atomic rename) and a cached file is checked again before it is used. ``$MEDBENCH_WEIGHTS_MIRROR``
replaces download.pytorch.org.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medbench.errors import ChecksumError, DownloadError
from medbench.pretrained.cache import cache_dir, file_sha256
from medbench.pretrained.registry import (
    OFFICIAL_BASE_URL,
    WEIGHTS_OPTION,
    PretrainedWeights,
    get_pretrained,
    hash_prefix,
    published_model,
    source_entries,
)

MIRROR_ENV_VAR = "MEDBENCH_WEIGHTS_MIRROR"
_MIRROR_FIX = (
    "Set it to the base URL of a folder holding torchvision's checkpoint files, e.g. "
    f"https://example.org/torch-models/, or unset it to download from {OFFICIAL_BASE_URL}."
)

logger = logging.getLogger(__name__)


def weights_url(entry: PretrainedWeights) -> str:
    """``$MEDBENCH_WEIGHTS_MIRROR/<file name>`` if the mirror is set, else the official URL.

    Raises:
        ConfigError: the mirror is set but is not an http(s):// or file:// URL.
    """
    # The download modules are imported where they are used, here and below: the CLI imports this package
    # at start-up, and only a download needs them.
    from medbench.data.url_download import mirror_base

    base = mirror_base(MIRROR_ENV_VAR, fix=_MIRROR_FIX)
    return f"{base}/{entry.filename}" if base else entry.url


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


def _by_hand(entry: PretrainedWeights, dest: Path) -> str:
    return (
        f"Download {entry.url} by hand, check that its SHA-256 starts with {entry.sha256_prefix}, and save "
        f"it as {dest} (torch hub's cache, shared with torchvision); or start from a copy stored elsewhere "
        f"with {WEIGHTS_OPTION}."
    )


def download_pretrained(
    model: str, source: str = "imagenet", *, force: bool = False, progress: bool = True, **kwargs: Any
) -> Path:
    """Makes sure ``model``'s checkpoint is in the cache, verified; downloads it when it is not.

    Args:
        model: a model with published weights (:func:`~medbench.pretrained.registry.list_pretrained`).
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

    source_entries(source)  # an unknown source is refused even when the user's own file is given
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"The weights file {path} does not exist.",
                "Check the path, or leave out --weights to use torchvision's ImageNet weights from the cache "
                f"({cache_dir()}).",
            )
        prefix = hash_prefix(path.name) if published_model(path.name) else None
        if prefix is not None and not (actual := file_sha256(path)).startswith(prefix):
            raise ChecksumError(
                f"{path} is named as torchvision's published file, but its SHA-256 {actual} does not "
                f"start with {prefix}: it is damaged or another file.",
                "Download it again (`medbench weights download MODEL`), or rename it if it is your own.",
            )
        return path
    return download_pretrained(model_name, source, progress=progress, **kwargs)
