"""The trace format: JSON Lines, a header, input records, a footer of expected outcomes.

A trace is a file contract between ``harness record`` (which writes it),
``harness replay`` and the workloads (which read it).

Layout, one JSON object a line::

    {"type": "header", "format": "agentbench-trace", "schema": 1, "scenario": ..., ...}
    {"type": "task", ...} | {"type": "hook_config", ...} | {"type": "tool_call", ...}
    | {"type": "gate", ...}                      (the input records, any number)
    {"type": "footer", "inputs_digest": ..., "committed_digest": ..., ...}

Guarantees:

* Every line is decoded into a typed record (msgspec): a bad line raises
  :class:`~harness.errors.TraceError`-compatible :class:`TraceFormatError` naming
  the file, the line number, the field and what was expected.
* A wrong schema version, a missing header, a missing footer (truncated file),
  a line that is not JSON, an unknown record type: each is an error.
* :func:`iter_inputs` streams: a trace of a million records is never held in
  memory; the footer is checked against the inputs' running digest at the end.
* :func:`trace_id` identifies a trace by the sha256 of its bytes.
* Hostile input is refused in bounded memory, with one :class:`TraceFormatError`
  line: a line longer than :data:`MAX_LINE_BYTES` (1 MiB, the newline not
  counted) is refused after reading at most that many bytes of it, whatever
  its length (a 3 GB file without a newline, ``/dev/zero``); a ``.gz`` trace
  is decompressed as a stream, line by line under the same limit, so a gzip
  bomb never inflates in memory; a truncated or corrupt gzip stream, a
  path that is not a regular file (a directory, a FIFO, a device, a socket:
  refused before it is opened, so a FIFO never blocks the reader) and bytes
  that are not JSON each raise :class:`TraceFormatError`, never another
  exception.

Why one module: it is one file format, the contract between its writer and its readers. Both
hash the same canonical line (:func:`encode_record`) into the inputs digest and share the
record structs and the schema version, and the reader's private guards (``_open_regular``,
``_lines``, ``_decode``) are the guarantees above.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import zlib
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, Literal, cast

import msgspec

from workloads.errors import WorkloadsError

__all__ = [
    "FORMAT_NAME",
    "MAX_LINE_BYTES",
    "SCHEMA_VERSION",
    "Footer",
    "GateRecord",
    "Header",
    "HookConfigRecord",
    "HookRecord",
    "InputRecord",
    "TaskRecord",
    "ToolCallRecord",
    "TraceFormatError",
    "TraceReader",
    "TraceWriter",
    "encode_record",
    "iter_inputs",
    "read_header",
    "trace_id",
]

FORMAT_NAME = "agentbench-trace"
# Schema history:
# 1: header / task / hook_config / tool_call / gate / footer (inputs, committed,
#    events and evidence digests, counts).
SCHEMA_VERSION = 1

# The longest line a trace may hold, its newline not counted. The largest record
# the scenarios write is under 1 KiB; a line a thousand times that is not a trace.
MAX_LINE_BYTES = 1 << 20

# How much of the file's own text an error repeats (a decoder's message can quote
# anything a line holds: an unknown field name of a megabyte, a newline), and the
# backstop length of a whole message.
_MAX_QUOTED_CHARS = 200
_MAX_MESSAGE_CHARS = 1000


def _one_line(text: str, limit: int = _MAX_QUOTED_CHARS) -> str:
    """``text`` with control characters escaped and cut to ``limit``: safe in a one-line error."""
    if text.isprintable() and len(text) <= limit:
        return text
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text[:limit])
    return shown + ("..." if len(text) > limit else "")


class TraceFormatError(WorkloadsError, ValueError):
    """A trace is not what the format says; ``path``, ``line``, ``field`` locate it."""

    def __init__(self, path: str, line: int, message: str, *, field: str = "") -> None:
        message, field = _one_line(message, _MAX_MESSAGE_CHARS), _one_line(field)
        where = f"{path}:{line}" if line else path
        if field:
            where += f": field {field}"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.field = field
        self.message = message


class Header(msgspec.Struct, tag_field="type", tag="header", forbid_unknown_fields=True):
    """The first line: what this trace is and how it was made."""

    format: str
    schema: int
    scenario: str
    kind: Literal["kernel", "mcp", "prp"]
    seed: int
    time_unit: Literal["s"]
    producer: str
    created: str
    description: str = ""


class TaskRecord(msgspec.Struct, tag_field="type", tag="task", forbid_unknown_fields=True):
    """A kernel task: priority (lower first), simulated duration, whether it fails."""

    id: str
    priority: int
    duration_s: float
    fails: bool = False
    payload: str = ""


class HookRecord(msgspec.Struct, forbid_unknown_fields=True):
    """One MCP hook of a hook configuration."""

    name: str
    phase: Literal["pre", "post"]
    build_cost: int
    duration_s: float
    independent: bool = False
    deny_if: str | None = None


class HookConfigRecord(
    msgspec.Struct, tag_field="type", tag="hook_config", forbid_unknown_fields=True
):
    """The hook configuration and tool set every following tool call runs under.

    A call of a tool not in ``tools`` is denied (``mcp.unknown_tool``).
    """

    hooks: list[HookRecord]
    tools: list[str]


class ToolCallRecord(msgspec.Struct, tag_field="type", tag="tool_call", forbid_unknown_fields=True):
    """An MCP tool call of a run, with its tool's simulated duration."""

    run_id: str
    tool: str
    args: dict[str, str]
    duration_s: float
    fails: bool = False


class GateRecord(msgspec.Struct, tag_field="type", tag="gate", forbid_unknown_fields=True):
    """A PRP quality gate: kind, dependencies, duration, approval wait, outcome."""

    id: str
    kind: Literal["automated", "human"]
    deps: list[str]
    duration_s: float
    approval_wait_s: float = 0.0
    fails: bool = False


class Footer(msgspec.Struct, tag_field="type", tag="footer", forbid_unknown_fields=True):
    """The expected outcome of a canonical run of the inputs above."""

    inputs_digest: str
    committed_digest: str
    events_digest: str
    evidence_digest: str
    counts: dict[str, int]


InputRecord = TaskRecord | HookConfigRecord | ToolCallRecord | GateRecord
_AnyRecord = Header | TaskRecord | HookConfigRecord | ToolCallRecord | GateRecord | Footer

_decoder = msgspec.json.Decoder(_AnyRecord)
_encoder = msgspec.json.Encoder(order="sorted")


def encode_record(record: _AnyRecord) -> bytes:
    """One record as its canonical line (sorted keys, compact), without the newline."""
    return _encoder.encode(record)


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _refuse_unless_regular(path: Path, mode: int) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
    raise TraceFormatError(
        str(path), 0, f"{kind}; expected a regular trace file (.jsonl or .jsonl.gz)"
    )


def _open_regular(path: Path) -> IO[bytes]:
    """``path`` opened for reading, refused unless it is a regular file.

    The type is checked before opening (opening a FIFO for reading blocks until
    a writer comes; opening a device can have effects), and again on the open
    descriptor, opened non-blocking, in case the path changed in between.
    """
    try:
        _refuse_unless_regular(path, os.stat(path).st_mode)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise TraceFormatError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


@contextmanager
def _open(path: Path) -> Iterator[IO[bytes]]:
    """The trace's bytes, decompressed as a stream when ``path`` ends in ``.gz``."""
    with ExitStack() as stack:
        fh = stack.enter_context(_open_regular(path))
        if path.suffix == ".gz":
            # GzipFile inflates only as much as each readline asks for.
            fh = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=fh, mode="rb")))
        yield fh


# What reading a damaged file can raise: OSError (gzip.BadGzipFile is one),
# EOFError (a gzip stream cut short), zlib.error (corrupt deflate data).
_READ_ERRORS = (OSError, EOFError, zlib.error)


def _read_error(path: Path, number: int, exc: BaseException) -> TraceFormatError:
    if isinstance(exc, EOFError):
        return TraceFormatError(str(path), number, f"truncated: {exc}; expected a complete file")
    if isinstance(exc, zlib.error | gzip.BadGzipFile):
        return TraceFormatError(str(path), number, f"corrupt gzip data: {exc}")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return TraceFormatError(str(path), number, f"cannot read: {reason}")


def _lines(path: Path, fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """Number and bytes of each line, stripped; at most MAX_LINE_BYTES + 1 read per line."""
    number = 0
    while raw := fh.readline(MAX_LINE_BYTES + 1):
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            raise TraceFormatError(
                str(path),
                number,
                f"line longer than {MAX_LINE_BYTES} bytes; "
                "expected one JSON record a line (is this a trace?)",
            )
        yield number, raw.strip()


def _decode(path: Path, number: int, line: bytes) -> _AnyRecord:
    try:
        record: _AnyRecord = _decoder.decode(line)
        return record
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = ""
        if " - at `" in text:  # msgspec appends the location last
            text, _, at = text.rpartition(" - at `")
            field = at.rstrip("`")
        text = _one_line(text)
        if field == "$.type":
            text = (
                f"unknown record type ({text}); "
                "expected header, task, hook_config, tool_call, gate or footer"
            )
        raise TraceFormatError(str(path), number, text, field=field) from None
    except msgspec.MsgspecError as exc:
        raise TraceFormatError(str(path), number, f"not JSON: {_one_line(str(exc))}") from None


class TraceReader:
    """A streaming reader of one trace: header first, then inputs, then the footer.

    Iterating yields the input records; the footer (and the inputs digest) is
    available after the iteration ended, and is checked there.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.footer: Footer | None = None
        self.inputs_digest: str | None = None
        self.header = read_header(self.path)

    def __iter__(self) -> Iterator[InputRecord]:
        digest = hashlib.sha256()
        footer: Footer | None = None
        number = 0
        try:
            with _open(self.path) as fh:
                for number, line in _lines(self.path, fh):
                    if not line:
                        raise TraceFormatError(str(self.path), number, "empty line")
                    if footer is not None:
                        raise TraceFormatError(
                            str(self.path), number, "data after the footer; expected end of file"
                        )
                    record = _decode(self.path, number, line)
                    if number == 1:
                        continue  # the header, already checked
                    if isinstance(record, Header):
                        raise TraceFormatError(str(self.path), number, "a second header")
                    if isinstance(record, Footer):
                        footer = record
                        continue
                    digest.update(encode_record(record))
                    digest.update(b"\n")
                    yield record
        except _READ_ERRORS as exc:
            raise _read_error(self.path, number + 1, exc) from None
        if footer is None:
            raise TraceFormatError(
                str(self.path), number, "no footer: the trace is truncated; expected a footer line"
            )
        self.footer = footer
        self.inputs_digest = digest.hexdigest()
        if footer.inputs_digest != self.inputs_digest:
            raise TraceFormatError(
                str(self.path),
                number,
                "the input records do not match the footer's inputs_digest "
                "(the trace was edited after it was recorded)",
                field="inputs_digest",
            )


def read_header(path: Path | str) -> Header:
    """The header of ``path``, checked: format name and schema version."""
    path = Path(path)
    try:
        with _open(path) as fh:
            first = next(_lines(path, fh), (1, b""))[1]
    except _READ_ERRORS as exc:
        raise _read_error(path, 1, exc) from None
    if not first:
        raise TraceFormatError(str(path), 1, "empty file; expected a header line")
    record = _decode(path, 1, first)
    if not isinstance(record, Header):
        raise TraceFormatError(str(path), 1, "the first line is not a header", field="$.type")
    if record.format != FORMAT_NAME:
        raise TraceFormatError(
            str(path),
            1,
            f"format {_one_line(repr(record.format))}; expected {FORMAT_NAME!r}",
            field="$.format",
        )
    if record.schema != SCHEMA_VERSION:
        raise TraceFormatError(
            str(path),
            1,
            f"schema version {record.schema}; expected {SCHEMA_VERSION}",
            field="$.schema",
        )
    return record


def iter_inputs(path: Path | str) -> Iterator[InputRecord]:
    """Stream the input records of a trace (the footer checked at the end)."""
    return iter(TraceReader(path))


def trace_id(path: Path | str) -> str:
    """The sha256 of the trace file's bytes: how bundles and reports name a trace.

    Raises :class:`TraceFormatError` for a path that is not a readable regular file.
    """
    path = Path(path)
    digest = hashlib.sha256()
    try:
        with _open_regular(path) as fh:
            for chunk in iter(lambda: fh.read(1 << 16), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _read_error(path, 0, exc) from None
    return digest.hexdigest()


class TraceWriter:
    """Writes a trace: header, records, footer; the inputs digest computed on the way."""

    def __init__(self, fh: IO[bytes], header: Header) -> None:
        self._fh = fh
        self._digest = hashlib.sha256()
        fh.write(encode_record(header) + b"\n")

    def write(self, records: Iterable[InputRecord]) -> None:
        """Append input records."""
        for record in records:
            line = encode_record(record)
            self._digest.update(line)
            self._digest.update(b"\n")
            self._fh.write(line + b"\n")

    @property
    def inputs_digest(self) -> str:
        """The digest of every input record written so far."""
        return self._digest.hexdigest()

    def finish(self, footer: Footer) -> None:
        """Write the footer (its inputs_digest must be this writer's)."""
        if footer.inputs_digest != self.inputs_digest:
            raise ValueError("the footer's inputs_digest is not the digest of the records written")
        self._fh.write(encode_record(footer) + b"\n")


def as_json(record: _AnyRecord) -> dict[str, Any]:
    """A record as plain JSON data."""
    data: dict[str, Any] = msgspec.to_builtins(record)
    return data
