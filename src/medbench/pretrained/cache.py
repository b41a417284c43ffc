"""Where checkpoints are kept, torch hub's cache (shared with torchvision), and how a file is checked.

Files live where torch hub keeps them, ``$TORCH_HOME/hub/checkpoints`` (``TORCH_HOME`` defaults to
``$XDG_CACHE_HOME/torch``, i.e. ``~/.cache/torch``), so weights torchvision already fetched are reused and
the other way round.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path

from medbench.pretrained.registry import get_pretrained, hash_prefix, published_model


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``: torch hub's own rule."""
    default = os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "torch")
    return Path(os.environ.get("TORCH_HOME", default)).expanduser()


def cache_dir() -> Path:
    """Where torch hub (and so torchvision) keeps downloaded checkpoints."""
    return torch_home() / "hub" / "checkpoints"


def cache_path(model: str, source: str = "imagenet") -> Path:
    return cache_dir() / get_pretrained(model, source).filename


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


def verify_checkpoint(path: str | os.PathLike) -> CheckpointCheck:
    """Checks a file against the hash its name carries, then that it is a readable state dict of tensors.

    Raises:
        WeightsError: the file is missing, or its hash is fine but it is not a (safe) state dict.
    """
    from medbench.frameworks.checkpoints import WeightsError, read_state_dict

    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"No checkpoint at {path}.", "Check the path.")
    check = CheckpointCheck(path, file_sha256(path), hash_prefix(path.name), published_model(path.name), None)
    if not check.ok:
        return check
    return dataclasses.replace(check, n_tensors=len(read_state_dict(path)))
