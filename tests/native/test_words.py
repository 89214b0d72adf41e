"""The compiled words of a landing file are the bytes scrubwords' own code gives."""

from __future__ import annotations

import gzip
import io
from unittest import mock

import fastavro
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from advertisex import native
from advertisex.formats import scrubwords
from advertisex.formats.scrubwords import _WORD_BYTES, words_of
from advertisex.native.words import distinct_words

pytestmark = pytest.mark.skipif(not native.available(), reason="compiled helpers not built")

# Word bytes, bytes of no word, and what a JSON line, a CSV row and an Avro block are made of.
PIECES = [b"u1", b"u-0001", b"a.b@c", b"_", b"-", b".", b"\n", b" ", b'"', b"{", b"}", b"\x00",
          b"\xff", b"\xc3\xa9", b"user_id", b"2026-12-07T00:42:00Z", b"[", b",", b"x" * 300]  # fmt: skip
texts = st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=8)), max_size=40).map(
    b"".join
)


def _python(data: bytes, container: str) -> bytes | None:
    """What scrubwords' own code gives, where the compiled helpers were not built."""
    with mock.patch.object(scrubwords, "distinct_words", lambda *_: None):
        return words_of(data, container)


def _avro(notes: list[bytes], codec: str) -> bytes:
    schema = {"type": "record", "name": "R", "fields": [{"name": "note", "type": "bytes"}]}
    out = io.BytesIO()
    records = [{"note": note} for note in notes]
    fastavro.writer(out, fastavro.parse_schema(schema), records, codec=codec, sync_marker=b"s" * 16)
    return out.getvalue()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(texts, min_size=1, max_size=5),
    st.sampled_from(["json", "csv", "avro"]),
    st.sampled_from(["plain", "gzip", "deflate"]),
)
@example([b""], "json", "plain")  # no word at all
@example([b"[" + b"x" * 70_000], "json", "plain")  # a JSON array, and a word too long to filter
@example([b'{"n":"' + b"y" * 70_000 + b'"}\n'], "json", "gzip")  # a filter refused
def test_the_compiled_words_are_the_pythons(
    parts: list[bytes], container: str, packing: str
) -> None:
    if container == "avro":
        data = _avro(parts, "deflate" if packing == "deflate" else "null")
    else:
        data = b"\n".join(parts)
    if packing == "gzip":
        data = gzip.compress(data, mtime=0)
    compiled = words_of(data, container)
    assert compiled == _python(data, container)


@given(st.lists(texts, max_size=6))
def test_a_run_never_continues_from_one_text_to_the_next(parts: list[bytes]) -> None:
    found = distinct_words(parts, _WORD_BYTES)
    assert found is not None
    with found:
        words = {run.group() for part in parts for run in scrubwords._WORD_RUN_BYTES.finditer(part)}
        assert found.joined() == b"\n" + b"".join(word + b"\n" for word in sorted(words))
        assert (found.count, found.bytes) == (len(words), sum(map(len, words)))
        assert found.longest == max(map(len, words), default=0)


def test_many_words_grow_the_table_and_filter_alike() -> None:
    lines = b"".join(b'{"user_id":"u-%07d","n":%d}\n' % (n, n % 977) for n in range(50_000))
    compiled = words_of(lines, "json")
    assert compiled is not None and compiled[:1] == b"F"
    assert compiled == _python(lines, "json")
    assert words_of(lines, "csv") == _python(lines, "csv")


def test_no_memory_for_the_words_is_no_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A summary only spares a read: where the helpers run out of memory (a file of tens of
    millions of distinct words), the file is read again next time, the erasure goes on."""

    def out_of_memory(*_: object) -> None:
        raise MemoryError("no memory for a landing file's words")

    monkeypatch.setattr(scrubwords, "distinct_words", out_of_memory)
    assert words_of(b'{"user_id":"u1"}\n', "json") is None
