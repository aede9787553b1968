"""Hostile trace files: refused with one TraceFormatError line, in bounded memory, never hanging."""

from __future__ import annotations

import gzip
import os
import stat
import threading
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workloads.registry import trace_path
from workloads.trace import (
    MAX_LINE_BYTES,
    Header,
    TraceFormatError,
    TraceReader,
    encode_record,
    iter_inputs,
    read_header,
    trace_id,
)

MIB = 1 << 20
GOOD = trace_path("kernel-small").read_bytes()
GOOD_LINES = GOOD.splitlines(keepends=True)
HEADER_LINE = GOOD_LINES[0]


def _read_all(path: Path) -> None:
    list(iter_inputs(path))


def _assert_valid_or_one_error(path: Path) -> None:
    """A trace is read whole, or refused with one TraceFormatError line naming the path."""
    try:
        _read_all(path)
    except TraceFormatError as exc:
        text = str(exc)
        assert "\n" not in text and "\r" not in text
        assert text.startswith(str(path))
        assert len(text) < len(str(path)) + 1200


def _mutated_trace() -> st.SearchStrategy[bytes]:
    """The shipped trace cut, spliced, or with bytes overwritten: errors deep in a file."""

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        data = bytearray(GOOD)
        for _ in range(draw(st.integers(0, 3))):
            at = draw(st.integers(0, len(data) - 1))
            data[at : at + 1] = draw(st.binary(min_size=0, max_size=8))
        cut = draw(st.integers(0, len(data)))
        return bytes(data[:cut]) if draw(st.booleans()) else bytes(data)

    return build()


HOSTILE_BYTES = st.one_of(
    st.binary(max_size=2048),
    st.builds(lambda tail: HEADER_LINE + tail, st.binary(max_size=512)),
    _mutated_trace(),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=HOSTILE_BYTES)
def test_any_bytes_are_a_trace_or_one_trace_format_error(tmp_path: Path, data: bytes) -> None:
    plain = tmp_path / "any.jsonl"
    plain.write_bytes(data)
    _assert_valid_or_one_error(plain)
    assert trace_id(plain)  # a regular file always has an identity


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=HOSTILE_BYTES,
    raw=st.booleans(),
    flips=st.lists(
        st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(1, 255)), max_size=3
    ),
    cut=st.floats(0.0, 1.0),
)
def test_any_gzip_file_is_a_trace_or_one_trace_format_error(
    tmp_path: Path, data: bytes, raw: bool, flips: list[tuple[float, int]], cut: float
) -> None:
    # raw: the bytes themselves under a .gz name (not gzip at all, mostly);
    # otherwise the bytes compressed, then some compressed bytes flipped (corrupt
    # deflate data, a wrong CRC or length) and the stream cut at a drawn fraction.
    compressed = bytearray(data if raw else gzip.compress(data, mtime=0))
    if not raw:
        for where, mask in flips:
            compressed[int(len(compressed) * where)] ^= mask
        del compressed[int(len(compressed) * cut) :]
    path = tmp_path / "any.jsonl.gz"
    path.write_bytes(bytes(compressed))
    _assert_valid_or_one_error(path)


def test_the_shipped_traces_still_read_plain_and_gzipped(tmp_path: Path) -> None:
    plain = list(iter_inputs(trace_path("kernel-small")))
    packed = tmp_path / "kernel-small.jsonl.gz"
    packed.write_bytes(gzip.compress(GOOD, mtime=0))
    assert list(iter_inputs(packed)) == plain
    assert len(list(iter_inputs(trace_path("kernel-large")))) > 0  # shipped .gz


def _header_line_of_length(length: int) -> bytes:
    """A valid header line of exactly ``length`` bytes (its description pads it)."""
    header = read_header(trace_path("kernel-small"))
    base = len(encode_record(_with_description(header, "")))
    line = encode_record(_with_description(header, "x" * (length - base)))
    assert len(line) == length
    return line


def _with_description(header: Header, description: str) -> Header:
    return Header(
        header.format,
        header.schema,
        header.scenario,
        header.kind,
        header.seed,
        header.time_unit,
        header.producer,
        header.created,
        description,
    )


def test_a_line_of_exactly_the_limit_is_read_and_one_byte_more_is_refused(tmp_path: Path) -> None:
    at_limit = tmp_path / "at-limit.jsonl"
    at_limit.write_bytes(_header_line_of_length(MAX_LINE_BYTES) + b"\n" + b"".join(GOOD_LINES[1:]))
    assert len(read_header(at_limit).description) > 0
    # The footer's inputs digest does not cover the header: the trace stays valid.
    assert len(list(iter_inputs(at_limit))) == len(GOOD_LINES) - 2

    over = tmp_path / "over.jsonl"
    over.write_bytes(_header_line_of_length(MAX_LINE_BYTES + 1) + b"\n")
    with pytest.raises(TraceFormatError, match=f"line longer than {MAX_LINE_BYTES} bytes") as info:
        read_header(over)
    assert info.value.line == 1
    assert str(info.value).startswith(f"{over}:1: ")


def _peak_bytes_while(action: Callable[[], object]) -> int:
    tracemalloc.start()
    try:
        with pytest.raises(TraceFormatError, match="line longer than"):
            action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_50_mib_line_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    # A sparse file of zero bytes, no newline (what `truncate -s 3G` makes).
    endless = tmp_path / "zeros.jsonl"
    with endless.open("wb") as fh:
        fh.truncate(50 * MIB)
    assert _peak_bytes_while(lambda: read_header(endless)) < 8 * MIB

    # The long line after a good first line: refused while iterating, named by number.
    later = tmp_path / "later.jsonl"
    with later.open("wb") as fh:
        fh.write(b"".join(GOOD_LINES[:3]))
        fh.truncate(50 * MIB)
    with pytest.raises(TraceFormatError, match=f"{later}:4: line longer than"):
        _read_all(later)
    assert _peak_bytes_while(lambda: _read_all(later)) < 8 * MIB


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    # 200 MiB of zeros in about 200 KiB of gzip, written a chunk at a time.
    bomb = tmp_path / "bomb.jsonl.gz"
    chunk = bytes(MIB)
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        for _ in range(200):
            fh.write(chunk)
    assert bomb.stat().st_size < 1 * MIB
    assert _peak_bytes_while(lambda: read_header(bomb)) < 8 * MIB


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated"),
        (lambda data: data[:5], "truncated"),
        (lambda data: data[:20] + bytes(b ^ 0xFF for b in data[20:60]) + data[60:], "corrupt"),
        (lambda data: data + b"garbage after the stream", "corrupt"),
        (lambda data: b"\x1f\x8b\x09" + data[3:], "corrupt"),  # unknown compression method
    ],
    ids=["cut-in-half", "cut-in-header", "flipped-bytes", "trailing-garbage", "bad-method"],
)
def test_damaged_gzip_is_one_trace_format_error(
    tmp_path: Path, damage: Callable[[bytes], bytes], message: str
) -> None:
    path = tmp_path / "damaged.jsonl.gz"
    path.write_bytes(damage(gzip.compress(GOOD, mtime=0)))
    with pytest.raises(TraceFormatError, match=message) as info:
        _read_all(path)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value)


def test_zlib_errors_are_not_left_raw() -> None:
    # The premise of the flipped-bytes case: corrupt deflate data raises zlib.error,
    # which is not an OSError, so a reader catching OSError alone would leak it.
    assert not issubclass(zlib.error, OSError)


def _refused_without_blocking(call: Callable[[], object], unblock: Callable[[], None]) -> str:
    """Run ``call`` in a thread; if it blocks, ``unblock`` frees it and the test fails."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # handed to the test thread, which asserts on it
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():
        unblock()
        worker.join(timeout=20)
        pytest.fail("the reader blocked on the path instead of refusing it")
    (error,) = outcome
    assert isinstance(error, TraceFormatError), error
    assert "\n" not in str(error)
    return str(error)


@pytest.mark.parametrize("reader", [read_header, TraceReader, iter_inputs, trace_id])
def test_a_fifo_is_refused_without_blocking(
    tmp_path: Path, reader: Callable[[Path], object]
) -> None:
    fifo = tmp_path / "trace.jsonl"
    os.mkfifo(fifo)

    def unblock() -> None:  # a writer lets a blocked open for reading return
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    message = _refused_without_blocking(lambda: reader(fifo), unblock)
    assert message == (
        f"{fifo}: a FIFO (named pipe); expected a regular trace file (.jsonl or .jsonl.gz)"
    )


@pytest.mark.skipif(not os.access("/dev/zero", os.R_OK), reason="/dev/zero is not readable here")
@pytest.mark.parametrize("reader", [read_header, iter_inputs, trace_id])
def test_dev_zero_is_refused_as_a_device(reader: Callable[[Path], object]) -> None:
    zero = Path("/dev/zero")
    assert stat.S_ISCHR(zero.stat().st_mode)
    message = _refused_without_blocking(lambda: reader(zero), lambda: None)
    assert message.startswith("/dev/zero: a character device; expected a regular trace file")


def test_a_directory_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="a directory; expected a regular trace file"):
        read_header(tmp_path)
    with pytest.raises(TraceFormatError, match="cannot read: No such file") as info:
        _read_all(tmp_path / "absent.jsonl")
    assert str(info.value).startswith(str(tmp_path / "absent.jsonl"))
    with pytest.raises(TraceFormatError, match="cannot read"):
        trace_id(tmp_path / "absent.jsonl")


@pytest.mark.parametrize(
    "field_name", ["a\nb\rc", "k" * (MIB // 2)], ids=["control-characters", "half-a-mebibyte"]
)
def test_what_an_error_quotes_from_the_file_stays_on_one_short_line(
    tmp_path: Path, field_name: str
) -> None:
    task = b'{"type":"task","id":"t","priority":1,"duration_s":1.0,'
    line = task + f'"{field_name}":1}}'.encode().replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    path = tmp_path / "fields.jsonl"
    path.write_bytes(HEADER_LINE + line + b"\n")
    with pytest.raises(TraceFormatError, match="unknown field") as info:
        _read_all(path)
    text = str(info.value)
    assert "\n" not in text and "\r" not in text
    assert len(text) < len(str(path)) + 400
    assert info.value.line == 2
