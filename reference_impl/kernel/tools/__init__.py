"""The allowlisted tools of the kernel: shell, filesystem and HTTP.

Each tool is a small class with a frozen config beside it, in a module of its
own (:mod:`.shell`, :mod:`.fs`, :mod:`.http`; the counters they share are in
:mod:`.common`); every public name is importable from this package. Whatever a tool
refuses, it refuses with :class:`~reference_impl.errors.DeniedError`, whose
``rule`` is a stable dotted name a caller can match on:

* shell: ``shell.argv`` (a shell string, an empty argv, a non-string or NUL
  argument), ``shell.executable`` (not allowlisted, or a path that is not
  exactly the allowlisted binary), ``shell.trampoline`` (a program that runs
  other programs, allowlisted by name instead of by exact argv),
  ``shell.timeout``, ``shell.output_cap``;
* filesystem: ``fs.nul``, ``fs.absolute``, ``fs.traversal`` (any ``..``
  component), ``fs.symlink_escape`` (a symlink that leads out of the root),
  ``fs.special_file`` (a FIFO, socket or device), ``fs.size`` (a file over
  the read cap), ``fs.directory`` (a write whose target is a directory);
* HTTP: ``http.url`` (unparsable), ``http.scheme``, ``http.host``,
  ``http.redirect_scheme``, ``http.redirect_host``, ``http.redirect_limit``,
  ``http.timeout`` (the whole call, redirects included, over its deadline).

Every check of the request runs *before* the side effect it guards: no process
is started, no file opened, no client created and no connection made for a
call denied by its argv, path or URL. The limits seen only on the way (a
timeout, an output cap, a file's real size or type) stop the call as soon as
they are crossed.
Failures that are not denials (a missing file, a refused connection) propagate
as the usual ``OSError`` or ``httpx.HTTPError``.

Each tool offers ``statistics()``: a frozen snapshot of its plain counters.
"""

from __future__ import annotations

from reference_impl.kernel.tools.common import ToolStatistics
from reference_impl.kernel.tools.fs import (
    DEFAULT_MAX_READ_BYTES,
    FileSystemConfig,
    FileSystemTool,
)
from reference_impl.kernel.tools.http import HttpConfig, HttpResponse, HttpStatistics, HttpTool
from reference_impl.kernel.tools.shell import (
    DEFAULT_SHELL_PATH,
    ShellConfig,
    ShellResult,
    ShellTool,
    is_trampoline,
    minimal_environment,
)

__all__ = [
    "DEFAULT_MAX_READ_BYTES",
    "DEFAULT_SHELL_PATH",
    "FileSystemConfig",
    "FileSystemTool",
    "HttpConfig",
    "HttpResponse",
    "HttpStatistics",
    "HttpTool",
    "ShellConfig",
    "ShellResult",
    "ShellTool",
    "ToolStatistics",
    "is_trampoline",
    "minimal_environment",
]
