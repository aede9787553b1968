"""The filesystem tool: reads, writes and lists files under one root directory, and nowhere else.

Its denials are the ``fs.*`` rules listed in :mod:`reference_impl.kernel.tools`.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import tempfile
from dataclasses import dataclass

from reference_impl.errors import ConfigError, DeniedError
from reference_impl.kernel.tools.common import (
    _READ_CHUNK_BYTES,
    ToolStatistics,
    _counted,
    _Counters,
)

DEFAULT_MAX_READ_BYTES = 16 * 1024 * 1024
_NEW_FILE_MODE = 0o644


@dataclass(frozen=True, slots=True)
class FileSystemConfig:
    """The directory :class:`FileSystemTool` is confined to, its text encoding and read cap.

    ``max_read_bytes`` is the largest file a read returns (16 MiB by default);
    a larger one is denied (``fs.size``) without being read into memory.
    """

    root: str | os.PathLike[str]
    encoding: str = "utf-8"
    max_read_bytes: int = DEFAULT_MAX_READ_BYTES

    def __post_init__(self) -> None:
        if self.max_read_bytes < 0:
            raise ConfigError(
                "FileSystemConfig.max_read_bytes", f"must be >= 0, got {self.max_read_bytes}"
            )


class FileSystemTool:
    """Reads, writes and lists files under one root directory, and nowhere else.

    A path is relative to the root. Guarantees, checked before any file is
    opened: no NUL byte (``fs.nul``), not absolute (``fs.absolute``), no ``..``
    component at all (``fs.traversal``), and the real path of the whole target,
    every symlink resolved, lies inside the real root (``fs.symlink_escape``).
    Symlinks that stay inside the root are followed. The checked real path is
    then opened with ``O_NOFOLLOW``, so a final component swapped for a symlink
    after the check is refused, not followed; a swap of an intermediate
    directory in that window is not detected (it would need ``openat2``).

    A read returns only a regular file (else ``fs.special_file``, before any
    read that could block) of at most ``max_read_bytes`` (else ``fs.size``;
    at most one byte over the cap is ever read, even from a file that grows
    or lies about its size). A write never targets a directory, the root
    included (``fs.directory``), and its temporary file is created in the
    target's own directory, which is inside the root.

    Operations are synchronous: small local files. An async caller that needs
    to may run them in :func:`asyncio.to_thread`.
    """

    def __init__(self, config: FileSystemConfig) -> None:
        root = os.fspath(config.root)
        if not os.path.isdir(root):
            raise ConfigError("FileSystemConfig.root", f"{root!r} is not a directory")
        self._config = config
        self._root = os.path.realpath(root)
        self._counters = _Counters()

    @property
    def root(self) -> str:
        """The real path of the root directory."""
        return self._root

    def statistics(self) -> ToolStatistics:
        """A snapshot of the calls made and the calls denied so far."""
        return ToolStatistics(calls=self._counters.calls, denials=self._counters.denials)

    def read_bytes(self, rel: str | os.PathLike[str]) -> bytes:
        """The whole content of the regular file ``rel``, at most ``max_read_bytes``.

        A FIFO, socket or device is denied (``fs.special_file``): reading one
        could block forever. A larger file is denied (``fs.size``) after
        reading at most ``max_read_bytes + 1`` of it. A directory raises
        :class:`IsADirectoryError`.
        """
        return _counted(self._counters, lambda: self._read(rel))

    def read_text(self, rel: str | os.PathLike[str]) -> str:
        """The content of ``rel`` decoded with the configured encoding; see :meth:`read_bytes`."""
        return _counted(self._counters, lambda: self._read(rel)).decode(self._config.encoding)

    def write_text(self, rel: str | os.PathLike[str], text: str) -> None:
        """Replace the content of ``rel`` with ``text``, atomically.

        The text goes to a temporary file in the same directory, which then
        replaces the target with :func:`os.replace`: a reader sees the old
        content or the new, never a part. The parent directory must exist; a
        target that is a directory (``""``, ``"."``, ``"sub/"``, a symlink to
        one) is denied (``fs.directory``) before anything is written. An
        existing file keeps its mode; a new one gets ``0o644``. A symlink inside
        the root keeps pointing at its target, whose content is replaced.
        Atomic, not durable: nothing is fsynced.
        """
        _counted(self._counters, lambda: self._write(rel, text))

    def list_dir(self, rel: str | os.PathLike[str] = "") -> tuple[str, ...]:
        """The names in directory ``rel`` (the root by default), sorted."""
        return _counted(self._counters, lambda: self._list(rel))

    def _confine(self, rel: str | os.PathLike[str]) -> tuple[str, str]:
        """``(shown, real)``: the path as given, and its checked real path."""
        path = os.fspath(rel)
        if "\x00" in path:
            raise DeniedError("fs.nul", path, "path contains a NUL byte")
        if os.path.isabs(path) or os.path.splitdrive(path)[0]:
            raise DeniedError("fs.absolute", path, "path must be relative to the root")
        parts = path.replace(os.altsep or os.sep, os.sep).split(os.sep)
        if ".." in parts:
            raise DeniedError("fs.traversal", path, "'..' is not allowed in a path")
        real = os.path.realpath(os.path.join(self._root, path))
        if os.path.commonpath([self._root, real]) != self._root:
            raise DeniedError("fs.symlink_escape", path, f"resolves to {real}, outside the root")
        return path, real

    def _open_nofollow(self, shown: str, real: str, flags: int) -> int:
        flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        try:
            return os.open(real, flags)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise DeniedError(
                    "fs.symlink_escape", shown, "the final component is a symlink at open time"
                ) from None
            raise

    def _read(self, rel: str | os.PathLike[str]) -> bytes:
        shown, real = self._confine(rel)
        # A socket cannot even be opened (ENXIO): refuse it, and any other
        # special file, by its type first; fstat below re-checks what was opened.
        with contextlib.suppress(FileNotFoundError):
            _require_regular_or_directory(shown, os.stat(real).st_mode)
        # O_NONBLOCK: opening a FIFO must not wait for a writer before fstat refuses it.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
        cap = self._config.max_read_bytes
        with os.fdopen(self._open_nofollow(shown, real, flags), "rb") as stream:
            status = os.fstat(stream.fileno())
            _require_regular_or_directory(shown, status.st_mode)
            if stat.S_ISDIR(status.st_mode):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), shown)
            if status.st_size > cap:
                raise DeniedError("fs.size", shown, f"{status.st_size} bytes, over the {cap} cap")
            # st_size can lie (procfs says 0) or grow: one byte past the cap proves it.
            data = _read_at_most(stream, cap + 1, size_hint=status.st_size)
            if len(data) > cap:
                raise DeniedError("fs.size", shown, f"more than the {cap}-byte cap")
            return data

    def _write(self, rel: str | os.PathLike[str], text: str) -> None:
        shown, real = self._confine(rel)
        data = text.encode(self._config.encoding)
        # realpath drops a trailing "/" and maps "" and "." to the root, whose
        # os.path.split() would be the root's *parent*: refuse any directory.
        if real == self._root or os.path.isdir(real):
            raise DeniedError("fs.directory", shown, "the write target is a directory")
        try:
            mode = stat.S_IMODE(os.stat(real).st_mode)
        except FileNotFoundError:
            mode = _NEW_FILE_MODE
        # real lies strictly inside the root, so its directory is the root or below it.
        directory, name = os.path.split(real)
        fd, temp_path = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
                if hasattr(os, "fchmod"):
                    os.fchmod(stream.fileno(), mode)
            os.replace(temp_path, real)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_path)
            raise

    def _list(self, rel: str | os.PathLike[str]) -> tuple[str, ...]:
        shown, real = self._confine(rel)
        if os.listdir in os.supports_fd and hasattr(os, "O_DIRECTORY"):
            fd = self._open_nofollow(shown, real, os.O_RDONLY | os.O_DIRECTORY)
            try:
                names = os.listdir(fd)
            finally:
                os.close(fd)
        else:  # pragma: no cover - not POSIX
            names = os.listdir(real)
        return tuple(sorted(names))


def _read_at_most(stream: io.BufferedReader, limit: int, *, size_hint: int) -> bytes:
    """Up to ``limit`` bytes until end-of-file, never asking for more than ``limit``.

    The first request is the announced size plus one (so an honest file takes
    one read and one end-of-file check), not ``limit``: a buffered read
    allocates what it is asked for, and the cap may be far above the file.
    """
    chunks: list[bytes] = []
    remaining = limit
    request = max(size_hint + 1, _READ_CHUNK_BYTES)
    while remaining > 0:
        chunk = stream.read(min(remaining, request))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
        request = _READ_CHUNK_BYTES
    return b"".join(chunks)


def _require_regular_or_directory(shown: str, mode: int) -> None:
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DeniedError("fs.special_file", shown, "not a regular file")
