"""File checksums, read in chunks so a multi-gigabyte npz never has to fit in memory.

MedMNIST publishes an MD5 per file, so MD5 is what the downloader checks; SHA-256 is here for files
medbench publishes itself (pretrained weights, results), where a collision-resistant hash is the right choice.
"""

from __future__ import annotations

import hashlib
import os

CHUNK_SIZE = 1 << 20  # 1 MiB: large enough to keep Python overhead negligible, small enough for any machine


def file_digest(path: str | os.PathLike, algo: str = "md5", *, chunk_size: int = CHUNK_SIZE) -> str:
    """Returns the hex digest of the file at ``path`` with the hashlib algorithm ``algo``.

    Raises:
        ValueError: if hashlib does not know ``algo``.
        OSError: if the file cannot be read.
    """
    # usedforsecurity=False: MD5 checks integrity here, not authenticity; FIPS-mode Pythons refuse it if not.
    digest = hashlib.new(algo, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def md5sum(path: str | os.PathLike) -> str:
    """The MD5 of a file as lower-case hex, the form MedMNIST publishes."""
    return file_digest(path, "md5")


def sha256sum(path: str | os.PathLike) -> str:
    """The SHA-256 of a file as lower-case hex."""
    return file_digest(path, "sha256")
