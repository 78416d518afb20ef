"""Reading the COPY blocks out of pg_restore's SQL output, whatever the chunking."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks.restore.tables.copy_stream import (
    CopyData,
    CopyEnd,
    CopyStart,
    CopyStreamError,
    CopyStreamParser,
    Event,
    Setting,
    parse_copy_header,
)

OUTPUT = (
    b"--\n-- PostgreSQL database dump\n--\n\n\\restrict AbC\n\n"
    b"SET statement_timeout = 0;\nSET client_encoding = 'UTF8';\n"
    b"SELECT pg_catalog.set_config('search_path', '', false);\n\n"
    b"--\n-- Data for Name: applications; Type: TABLE DATA; Schema: public; Owner: dbops\n--\n\n"
    b"COPY public.applications (id, notes) FROM stdin;\n"
    b"1\tfirst\\nline \\\\. not an end\n"
    b"2\t\\N\n"
    b"\\.\n\n\n"
    b'COPY public."Odd ""name""" ("Col", x) FROM stdin;\n'
    b"\\.\n\n\n"
    b"\\unrestrict AbC\n"
)


def events_of(chunks: list[bytes]) -> list[Event]:
    parser = CopyStreamParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    parser.finish()
    return events


def merged(events: list[Event]) -> list[Event]:
    """Adjacent data events as one: the parser may split a block's rows anywhere between lines."""
    result: list[Event] = []
    for event in events:
        if isinstance(event, CopyData) and result and isinstance(result[-1], CopyData):
            result[-1] = CopyData(result[-1].data + event.data)
        else:
            result.append(event)
    return result


EXPECTED: list[Event] = [
    Setting("client_encoding", "UTF8"),
    CopyStart("public", "applications", ("id", "notes")),
    CopyData(b"1\tfirst\\nline \\\\. not an end\n2\t\\N\n"),
    CopyEnd("public", "applications"),
    CopyStart("public", 'Odd "name"', ("Col", "x")),
    CopyEnd("public", 'Odd "name"'),
]


def test_blocks_rows_and_the_encoding_are_read_from_one_chunk() -> None:
    assert events_of([OUTPUT]) == EXPECTED


@given(st.lists(st.integers(min_value=1, max_value=len(OUTPUT)), max_size=40))
def test_any_chunking_gives_the_same_blocks_and_rows(cuts: list[int]) -> None:
    bounds = [0, *sorted(set(cuts)), len(OUTPUT)]
    chunks = [OUTPUT[start:end] for start, end in pairwise(bounds)]

    events = events_of(chunks)

    assert merged(events) == EXPECTED
    # Data is handed on in whole lines only, so every piece is a complete set of rows.
    assert all(event.data.endswith(b"\n") for event in events if isinstance(event, CopyData))


def test_a_block_without_its_terminator_is_a_truncated_stream() -> None:
    parser = CopyStreamParser()
    parser.feed(b"COPY public.courses (id) FROM stdin;\n1\n2\n")

    with pytest.raises(CopyStreamError, match=r"public\.courses end without their terminator"):
        parser.finish()


def test_headers_as_pg_dump_quotes_them() -> None:
    assert parse_copy_header("COPY public.t (a, b) FROM stdin;") == CopyStart("public", "t", ("a", "b"))
    assert parse_copy_header('COPY "My Schema"."t.1" ("a, b", "c""d") FROM stdin;') == CopyStart(
        "My Schema", "t.1", ("a, b", 'c"d')
    )
    assert parse_copy_header("COPY public.empty  FROM stdin;") == CopyStart("public", "empty", ())
    with pytest.raises(CopyStreamError):
        parse_copy_header("COPY t (a) FROM stdin;")
