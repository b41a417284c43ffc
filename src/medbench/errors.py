"""Exceptions for mistakes a user can fix.

Every error carries the problem and the fix as separate parts, so the CLI can print one readable line
(and tests can check both) instead of a traceback.
"""

from __future__ import annotations


class MedbenchError(Exception):
    """A problem the user can act on: what went wrong and what to do about it."""

    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem} {fix}" if fix else problem)


class UnknownDatasetError(MedbenchError, KeyError):
    """A dataset name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return Exception.__str__(self)


class InvalidSizeError(MedbenchError, ValueError):
    """An image size MedMNIST does not publish."""


class DataFileMissingError(MedbenchError, FileNotFoundError):
    """An expected data file is not on disk."""


class InvalidDataFileError(MedbenchError, ValueError):
    """A data file that is not in the official MedMNIST npz layout."""


class ChecksumError(MedbenchError, ValueError):
    """A file whose checksum does not match the official one."""


class DownloadError(MedbenchError, OSError):
    """A download that could not be completed."""


class ConfigError(MedbenchError, ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""
