"""Output files the user names (``--out``, ``--summary``, ``--json``, ``--markdown``).

Every command that writes a file the user named writes it atomically (a temporary
file in the same directory, renamed over the path), so a reader never sees half a
file. A rename replaces whatever was at the path, and that is only right when it
was a regular file: renaming over a symlink replaces the link (not the file it
points to), and over a FIFO or a device it silently turns a special file into a
regular one. :func:`check_output_file` refuses those paths, in one line, before
the command measures or writes anything.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from harness.errors import EnvironmentRefused

__all__ = ["check_output_file", "file_kind", "write_text_atomically"]

_KINDS = (
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)
_EXPECTED = "a regular file or a path that does not exist yet (it is replaced atomically)"


def file_kind(mode: int) -> str:
    """What an ``lstat`` mode is, in words (``a FIFO (named pipe)``, ``a regular file``)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_output_file(path: Path, flag: str, *, create_parents: bool = False) -> None:
    """Refuse ``path`` as an output file unless a regular file can be renamed onto it.

    Accepted: a regular file (replaced) or nothing at all, in a directory this
    process can write. Refused with :class:`~harness.errors.EnvironmentRefused`
    naming ``flag`` and the path: a symlink (``lstat``: the link itself, not its
    target), a directory, a FIFO, a device, a socket; a path under a regular
    file; a directory that does not exist (unless ``create_parents``: then the
    nearest existing ancestor must be a writable directory); a directory that
    cannot be written. Nothing is created or changed here.
    """
    where = f"{flag} {path}"
    try:
        mode: int | None = os.lstat(path).st_mode
    except FileNotFoundError:
        mode = None
    except NotADirectoryError:
        raise EnvironmentRefused(
            "a path under something that is not a directory", where=where, expected=_EXPECTED
        ) from None
    except OSError as exc:
        raise EnvironmentRefused(
            f"cannot inspect it ({exc.strerror or exc})", where=where, expected=_EXPECTED
        ) from None
    if mode is not None and not stat.S_ISREG(mode):
        raise EnvironmentRefused(
            f"{file_kind(mode)}, not a regular file", where=where, expected=_EXPECTED
        )
    directory = path.parent
    while True:
        try:
            directory_mode = os.stat(directory).st_mode  # a symlinked directory is fine
            break
        except FileNotFoundError:
            if not create_parents:
                raise EnvironmentRefused(
                    f"the directory {directory} does not exist",
                    where=where,
                    expected="a file in an existing directory",
                ) from None
            if directory.parent == directory:
                raise  # the root is always there: anything else is worth a traceback
            directory = directory.parent
        except OSError as exc:
            raise EnvironmentRefused(
                f"cannot inspect {directory} ({exc.strerror or exc})",
                where=where,
                expected=_EXPECTED,
            ) from None
    if not stat.S_ISDIR(directory_mode):
        raise EnvironmentRefused(
            f"{directory} is {file_kind(directory_mode)}, not a directory",
            where=where,
            expected="a file in a directory",
        )
    if not os.access(directory, os.W_OK | os.X_OK):
        raise EnvironmentRefused(
            f"the directory {directory} is not writable",
            where=where,
            expected="a file in a directory this user can write",
        )


def _new_file_mode() -> int:
    # A temporary file is created 0600; the file it becomes gets what open() would
    # have given it. The umask can only be read by setting it (this process only).
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``: a temporary file beside it, renamed over it.

    A reader sees the old file or the new one, never half of one; an error
    (KeyboardInterrupt included) removes the temporary file. The file keeps the
    permissions of the one it replaces (a new one gets the umask's). Call
    :func:`check_output_file` first: the rename replaces whatever is at ``path``.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
