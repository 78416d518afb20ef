"""The binary COPY reader, on streams built to the protocol's layout and cut at every boundary."""

from __future__ import annotations

import struct

import pytest

from tasks.postgres.copy_binary import SIGNATURE, BinaryCopyReader


def stream(values: list[bytes], extension: bytes = b"") -> bytes:
    header = SIGNATURE + struct.pack("!II", 0, len(extension)) + extension
    tuples = b"".join(struct.pack("!hi", 1, len(value)) + value for value in values)
    return header + tuples + struct.pack("!h", -1)


@pytest.mark.parametrize("chunk_size", [1, 2, 5, 7, 19, 4096])
def test_values_come_out_whole_however_the_stream_is_cut(chunk_size: int) -> None:
    values = [b'{"id":1}\n{"id":2}\n', b"", b'{"a":"\\\\ \\n"}\n' * 50]
    data = stream(values, extension=b"ext!")
    reader = BinaryCopyReader()

    read = [
        value
        for start in range(0, len(data), chunk_size)
        for value in reader.feed(data[start : start + chunk_size])
    ]

    assert read == values
    assert reader.finished


def test_a_truncated_stream_is_not_finished_and_a_foreign_one_is_refused() -> None:
    data = stream([b"x" * 100])
    reader = BinaryCopyReader()

    assert list(reader.feed(data[:-10])) == []
    assert not reader.finished
    with pytest.raises(ValueError, match="not a binary COPY stream"):
        list(BinaryCopyReader().feed(b"id,name\n1,x\n" * 3))
    with pytest.raises(ValueError, match="expected one column per row, got 2"):
        list(BinaryCopyReader().feed(SIGNATURE + struct.pack("!IIh", 0, 0, 2)))
