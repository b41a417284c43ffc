"""Checks made in the parent before any work starts: no run row, no run folder, no framework import.

What can be known from the config and the file system alone (a data file that is missing or belongs to
another dataset, pretrained weights a model does not have, a run folder whose JSON is damaged, an output
folder that cannot be written) is refused here, with a :class:`~medbench.errors.MedbenchError` naming the
value and the fix, instead of surfacing later as a failed run with an empty folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medbench.errors import ConfigError, DataFileMissingError, MedbenchError

CHECKPOINT_META = "checkpoint.json"  # the names medbench.training writes (kept equal by a test)
PROGRESS_FILE = "progress.json"


class RunFolderError(MedbenchError):
    """A run folder that is missing a file or holds a damaged one."""


# ---- run folders ----------------------------------------------------------------------------------------


def read_json(path: Path, *, what: str, fix: str) -> dict[str, Any]:
    """A JSON object from ``path``; an empty, truncated or non-object file is a :class:`RunFolderError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunFolderError(f"{path} does not exist ({what}).", fix) from None
    except IsADirectoryError:
        raise RunFolderError(f"{path} is a folder, not {what}.", fix) from None
    except UnicodeDecodeError:
        raise RunFolderError(f"{path} is not a text file ({what}).", fix) from None
    if not text.strip():
        raise RunFolderError(f"{path} is empty; it should hold {what}.", fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RunFolderError(
            f"{path} is damaged (truncated or not JSON: {err.msg} at line {err.lineno}); it should hold {what}.",
            fix,
        ) from None
    if not isinstance(data, dict):
        raise RunFolderError(f"{path} holds a JSON {type(data).__name__}, not {what}.", fix)
    return data


def run_folder(path: str | os.PathLike) -> Path:
    """The run folder of ``path`` (a weights file inside it counts as its folder)."""
    folder = Path(path).expanduser()
    if folder.is_file():
        folder = folder.parent
    if not folder.exists():
        raise RunFolderError(
            f"The run folder {folder} does not exist.",
            "Pass a folder printed by `medbench train` (list the runs with `medbench results`).",
        )
    return folder


def read_run_meta(path: str | os.PathLike) -> dict[str, Any]:
    """``checkpoint.json`` of a run folder, checked: readable, JSON, with the fields evaluate/predict use."""
    folder = run_folder(path)
    meta_path = folder / CHECKPOINT_META
    if not meta_path.exists():
        raise RunFolderError(
            f"{folder} is not a medbench run folder (no {CHECKPOINT_META}).",
            "Pass the checkpoint folder printed by `medbench train` (see `medbench results`).",
        )
    fix = (
        "The run folder is damaged: train the run again (`medbench train ...`), "
        "or restore the file from a backup."
    )
    meta = read_json(meta_path, what="the run's checkpoint metadata", fix=fix)
    missing = [k for k in ("config", "framework") if k not in meta]
    if missing:
        raise RunFolderError(f"{meta_path} lacks {', '.join(missing)}.", fix)
    return meta


def check_resume_folder(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint metadata of a folder ``train --resume`` can continue; refuses a damaged one."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise RunFolderError(
            f"{folder} is not a run folder"
            + (" (it is a file)." if folder.exists() else " (it does not exist)."),
            "Pass the folder printed when the run was interrupted (`medbench results --status interrupted`).",
        )
    meta_path, progress_path = folder / CHECKPOINT_META, folder / PROGRESS_FILE
    if not meta_path.exists() or not progress_path.exists():
        raise RunFolderError(
            f"{folder} is not a resumable run folder (no {CHECKPOINT_META} or {PROGRESS_FILE}).",
            "Pass the folder printed when the run was interrupted.",
        )
    fix = (
        "The saved state is damaged, so the run cannot continue exactly: start it again without --resume "
        "(the same command as before)."
    )
    meta = read_json(meta_path, what="the run's checkpoint metadata", fix=fix)
    read_json(progress_path, what="the run's progress (epochs done)", fix=fix)
    if "config" not in meta:
        raise RunFolderError(f"{meta_path} lacks the run's config.", fix)
    return meta


# ---- data files -----------------------------------------------------------------------------------------


def _official_files() -> dict[str, tuple[str, int]]:
    """MD5 of every official file -> (flag, size)."""
    from medbench.data import registry

    out = {}
    for flag in registry.list_datasets():
        info = registry.get_dataset(flag)
        for size in info.sizes:
            out[info.remote(size).md5] = (flag, size)
    return out


def _named_as(path: Path) -> tuple[str, int] | None:
    """(flag, size) when the file carries an official file name (``pneumoniamnist.npz``, ``bloodmnist_64.npz``)."""
    from medbench.data import registry

    for flag in registry.list_datasets():
        info = registry.get_dataset(flag)
        for size in info.sizes:
            if path.name.lower() == info.filename(size).lower():
                return flag, size
    return None


def check_data_file(flag: str, size: int, path: str | os.PathLike, *, purpose: str) -> None:
    """Refuses a data file that does not exist or that is another dataset's (by MD5, name or split sizes).

    Args:
        flag, size: the dataset the file must hold (a run's dataset and image size).
        path: the file given with ``--data-file``.
        purpose: who needs it, for the message (``"the run"``, ``"this run"``).
    """
    from medbench.data import registry
    from medbench.data.data_file import file_hashes

    expected = registry.get_dataset(flag)
    file = Path(path).expanduser()
    if not file.is_file():
        what = "is a folder" if file.is_dir() else "does not exist"
        raise DataFileMissingError(
            f"The data file {file} {what} (given as the file for {flag}).",
            f"Check the path, or drop --data-file to use the official {flag} file "
            f"(`medbench download {flag} --size {size}` fetches it).",
        )
    fix = (
        f"Pass a {flag} file (the official one: `medbench download {flag} --size {size}`), "
        f"or evaluate a run trained on the file's dataset."
        if purpose == "evaluate"
        else f"Pass a {flag} file, or train on the file's dataset with `-d`."
    )
    named = _named_as(file)
    if named is not None and named[0] != expected.flag:
        other = registry.get_dataset(named[0])
        raise ConfigError(
            f"{file} is named as the {other.title} file ({other.flag}), but {purpose_text(purpose)} "
            f"{expected.title} ({expected.flag}).",
            fix + " If the file really holds " + expected.flag + " images, rename it.",
        )
    md5, _ = file_hashes(file)
    official = _official_files().get(md5)
    if official is not None and official[0] != expected.flag:
        other = registry.get_dataset(official[0])
        raise ConfigError(
            f"{file} is the official {other.title} file ({other.flag}, {official[1]} px, by MD5), but "
            f"{purpose_text(purpose)} {expected.title} ({expected.flag}).",
            fix,
        )
    _check_headers(expected, size, file, purpose, fix, official=official is not None)


def check_trial_data_files(trials) -> None:
    """Each local data file of an experiment grid holds its trial's dataset (not another's), each checked
    once, before any trial starts."""
    seen = set()
    for t in trials:
        d = t.config.data
        if d.data_file is not None and (d.dataset, d.size, str(d.data_file)) not in seen:
            seen.add((d.dataset, d.size, str(d.data_file)))
            check_data_file(d.dataset, d.size, d.data_file, purpose="train")


def purpose_text(purpose: str) -> str:
    return "the run was trained on" if purpose == "evaluate" else "the run trains on"


def _check_headers(expected, size: int, file: Path, purpose: str, fix: str, *, official: bool) -> None:
    """The layout from the arrays' headers alone (shapes, dtypes: no data read), as the loader checks it;
    and a custom file whose split sizes are exactly another dataset's official ones is that dataset."""
    from medbench.data import registry
    from medbench.data.data_file import Source
    from medbench.data.npz_archive import check_layout, open_zip, read_headers

    src = Source(expected, size, file, True)
    with open_zip(src) as zf:
        members = read_headers(zf, src)
    check_layout(members, src)
    if official:
        return
    found = {s: members[f"{s}_images"].shape[0] for s in registry.SPLITS}
    if found == dict(expected.n_samples):
        return
    for flag in registry.list_datasets():
        info = registry.get_dataset(flag)
        if flag != expected.flag and dict(info.n_samples) == found:
            raise ConfigError(
                f"{file} has exactly the split sizes of {info.title} ({info.flag}: "
                f"{', '.join(f'{s} {n}' for s, n in found.items())}), but {purpose_text(purpose)} "
                f"{expected.title} ({expected.flag}).",
                fix,
            )


def check_official_file(flag: str, size: int, root: str | os.PathLike | None) -> None:
    """Refuses a run on an official file that is not on disk, with the download command."""
    from medbench.data import registry

    path = registry.local_path(flag, size, root)
    if not path.is_file():
        raise DataFileMissingError(
            f"No {registry.get_dataset(flag).title} file for {size} px at {path}.",
            f"Run `medbench download {flag} --size {size}` (set the data root with --root or "
            f"${registry.ROOT_ENV_VAR}), or point at an existing file with `--data-file PATH`.",
        )


# ---- a training run -------------------------------------------------------------------------------------


def check_train_config(config) -> None:
    """What a :class:`~medbench.config.RunConfig` needs on disk, checked before its worker starts."""
    d = config.data
    if d.data_file is not None:
        check_data_file(d.dataset, d.size, d.data_file, purpose="train")
    else:
        check_official_file(d.dataset, d.size, d.root)
    if config.init_weights is not None:
        weights = Path(config.init_weights).expanduser()
        if not weights.is_file():
            raise ConfigError(
                f"The weights file {weights} does not exist.", "Check the path given with --weights."
            )
    elif config.finetune.pretrained:
        from medbench.pretrained import get_pretrained

        get_pretrained(config.model, config.finetune.pretrained)  # a model without such weights: refused


def check_writable_folder(folder: str | os.PathLike, *, option: str) -> Path:
    """Creates ``folder`` if needed and checks it can be written; the message names the option to change."""
    path = Path(folder).expanduser()
    fix = f"Choose a folder you can write to with {option}."
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{path} is a file, not a folder.", fix)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"Cannot create the folder {path}: {err.strerror or err}.", fix) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"The folder {path} is not writable.", fix)
    return path


def check_report_folder(folder: str | os.PathLike, *, option: str) -> Path:
    """A report is a folder (report.html, report.md and the PNGs): a file, or a name that reads like the
    page itself (``report.html``), is refused before anything runs rather than made into a folder."""
    path = Path(folder).expanduser()
    names_a_page = path.suffix.lower() in (".html", ".htm", ".md")
    if names_a_page or (path.exists() and not path.is_dir()):
        # the page's own name without its suffix, or, beside an existing file, a folder next to it
        instead = path.with_suffix("") if names_a_page else path.with_name(f"{path.name}-report")
        raise ConfigError(
            f"{option} {path} {'names' if names_a_page else 'is'} a file; the report is a folder "
            "(report.html, report.md and PNGs).",
            f"Pass a folder to {option}, e.g. {option} {instead}.",
        )
    return path


# ---- the results store ----------------------------------------------------------------------------------


def open_existing_store(path: str | os.PathLike | None, *, doing: str = ""):
    """The results store for a command that only reads it: never a new, empty one from a mistyped path.

    Returns None when no store was named (no ``--store``, no ``$MEDBENCH_RESULTS``) and the default one does
    not exist yet: nothing has been run. A named file that does not exist is refused.
    """
    from medbench.paths import HOME_ENV_VAR
    from medbench.results import RESULTS_ENV_VAR, ResultsStore, ResultsStoreError, default_results_path

    file = default_results_path(path)
    if file.exists():
        return ResultsStore(file)
    named_by = (
        "--store" if path is not None else (RESULTS_ENV_VAR if os.environ.get(RESULTS_ENV_VAR) else None)
    )
    if named_by is None:
        return None
    default = default_results_path(None) if named_by == "--store" else None
    where = (
        f" (the default is {default}" + (", which exists)" if default.exists() else ")") if default else ""
    )
    raise ResultsStoreError(
        (f"{doing}: there is no" if doing else "No")
        + f" results store at {file} (given with {'$' if named_by != '--store' else ''}{named_by}).",
        f"Check the path{where}: training and `medbench run` write to $MEDBENCH_RESULTS, else "
        f"${HOME_ENV_VAR}/results.sqlite, unless given --store.",
    )
