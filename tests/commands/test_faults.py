"""Faults of the environment and of medbench itself, through the CLI's real entry point (``medbench.cli.app``).

A fault that no bad argument can provoke on purpose (a full disk, a bug) comes from a small extra command
registered on the app in a subprocess; everything else about the process is the real console command.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from medbench.errors import describe_os_error

# A script that registers one faulty command, then runs the console entry point as `medbench fault`.
_SCRIPT = textwrap.dedent(
    """
    import errno, sqlite3, sys
    from medbench import interrupt
    from medbench.commands.app import app

    @app.command("fault")
    def fault(kind: str) -> None:
        if kind == "enospc":
            raise OSError(errno.ENOSPC, "No space left on device", "/data/runs/x/state.npz")
        if kind == "erofs":
            raise OSError(errno.EROFS, "Read-only file system", "/mnt/ro/results.sqlite")
        if kind == "sqlite-full":
            raise sqlite3.OperationalError("database or disk is full")
        if kind == "interrupt":
            interrupt.keep("The run folder /r/[x] was kept; continue it with `medbench train --resume /r/[x]`.")
            raise KeyboardInterrupt
        if kind == "bug":
            1 / 0

    import medbench.cli
    sys.argv = ["medbench", "fault", sys.argv[1]]
    medbench.cli.app()
    """
)


def _fault(kind: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _SCRIPT, kind],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("enospc", "No space left on device: /data/runs/x/state.npz. Free some space"),
        ("erofs", "Read-only file system: /mnt/ro/results.sqlite"),
        ("sqlite-full", "database or disk is full"),
    ],
)
def test_a_fault_of_the_environment_is_one_line_and_exit_1(kind, says):
    result = _fault(kind)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_ctrl_c_says_what_was_kept_and_how_to_resume():
    result = _fault("interrupt")
    assert result.returncode == 130
    assert "Traceback" not in result.stderr
    # the note is the user's text: printed as it is, brackets included (not eaten as Rich markup)
    assert "interrupted" in result.stderr and "medbench train --resume /r/[x]" in result.stderr


def test_a_bug_keeps_its_traceback_and_asks_for_a_report():
    result = _fault("bug")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "ZeroDivisionError" in result.stderr
    assert "bug in medbench" in result.stderr and "report it" in result.stderr


def test_describe_os_error_covers_only_the_environment():
    assert "Free some space" in describe_os_error(OSError(errno.ENOSPC, "No space left on device"))
    assert "writable" in describe_os_error(PermissionError(errno.EACCES, "Permission denied", "/x"))
    assert describe_os_error(ValueError("a bug")) is None


_INTERRUPT_IMPORT = textwrap.dedent(
    """
    import sys

    class CtrlC:  # Ctrl-C pressed while the CLI imports its command modules
        def find_spec(self, name, path=None, target=None):
            if name == "medbench.commands.train":
                raise KeyboardInterrupt
            return None

    sys.meta_path.insert(0, CtrlC())
    import medbench.cli
    sys.argv = ["medbench", "datasets"]
    medbench.cli.app()
    """
)


def test_ctrl_c_while_the_commands_are_imported_is_one_line_and_exit_130():
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPT_IMPORT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 130, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == "interrupted (Ctrl-C).", result.stderr


def test_ctrl_c_at_any_moment_of_the_start_up_never_shows_medbench_frames():
    """A real SIGINT at several moments of the start-up: exit 130 with one line once medbench's code runs.

    Before that (Python itself importing the package) the interpreter's own handling applies: it may die of
    SIGINT or print its own short KeyboardInterrupt, with no frame of medbench's code in it."""
    for delay in (0.05, 0.2, 0.4, 0.8):
        process = subprocess.Popen(
            [sys.executable, "-m", "medbench.cli", "datasets"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        assert "medbench" not in err.split("KeyboardInterrupt")[0] or "Traceback" not in err, err
        assert process.returncode in (130, 1, -signal.SIGINT, 0), (process.returncode, err)
        if process.returncode == 130:
            assert "interrupted" in err and len(err.strip().splitlines()) == 1, err
