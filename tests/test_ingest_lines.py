"""`readers.BoundedLines` cuts a CSV text stream into exactly the lines `readline` gives with
newline="" (a line ends at \\n, \\r\\n or a lone \\r, kept), wherever its reads are cut, and refuses
the first line over the limit with that line's number; `readers.has_surrogates` finds the
surrogate escapes of undecodable bytes; `batches.line_blocks` numbers lines as `bytes.split` does."""

from __future__ import annotations

import io
import random

import pytest

from flywheel.ingest import batches, readers


def _readline_lines(text: str, limit: int) -> tuple[list[str], int | None]:
    """The lines readline(limit + 1) gives, up to the first over the limit, and that line's number."""
    stream, out = io.StringIO(text, newline=""), []
    while line := stream.readline(limit + 1):
        out.append(line)
        if len(line) > limit:
            return out[:-1], len(out)
    return out, None


def _bounded_lines(text: str, limit: int, size: int) -> tuple[list[str], str | None]:
    got: list[str] = []
    try:
        for line in readers.BoundedLines(io.StringIO(text, newline=""), limit, size):
            got.append(line)
    except readers.BadFile as exc:
        return got, str(exc)
    return got, None


@pytest.mark.parametrize(("text", "size", "lines"), [
    ("a\r\nb\n", 2, ["a\r\n", "b\n"]),        # \r\n cut between two reads
    ("a\rb\r", 2, ["a\r", "b\r"]),            # lone \r, and \r at the very end
    ("a\r\r\nb", 3, ["a\r", "\r\n", "b"]),    # no newline at the end
    ("\n\n", 1, ["\n", "\n"]),
    ("", 4, []),
])
def test_lines_end_where_readline_ends_them(text, size, lines):
    assert _bounded_lines(text, 10, size) == (lines, None)


def test_a_line_over_the_limit_is_refused_with_its_number_after_the_lines_before_it():
    got, error = _bounded_lines("ab\ncdefgh\nij\n", 5, 2)
    assert got == ["ab\n"]
    assert error is not None and "CSV line 2 is longer than the record limit of 5 bytes" in error
    # the limit counts the line's end too, as readline(limit + 1) does: 5 characters and \n is over
    assert _bounded_lines("abcde\n", 5, 64)[1] is not None
    assert _bounded_lines("abcd\n", 5, 64) == (["abcd\n"], None)


def test_random_texts_cut_as_readline_cuts_them():
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(["a", "b", "\r", "\n", "\r\n", '"', ",", "é"]) for _ in range(rng.randint(0, 60)))
        limit, size = rng.randint(1, 12), rng.randint(1, 7)
        expected, number = _readline_lines(text, limit)
        got, error = _bounded_lines(text, limit, size)
        assert got == expected, (text, limit, size)
        assert (error is None) == (number is None), (text, limit, size)
        if number is not None:
            assert f"CSV line {number} " in error


def test_a_long_line_without_newline_is_refused_without_rescanning_it():
    # 8 MiB in reads of 64 KiB: a pattern that failed at every position would take minutes here
    text = "h\n" + "x" * (8 * 1024 * 1024)
    got, error = _bounded_lines(text, 4 * 1024 * 1024, 64 * 1024)
    assert got == ["h\n"] and error is not None and "CSV line 2 " in error


def test_surrogate_escapes_are_found_and_other_text_is_not():
    bad = b"caf\xe9".decode("utf-8", errors="surrogateescape")
    assert readers.has_surrogates(["a", bad])
    assert not readers.has_surrogates(["a", "café", "日本", ""])


def test_line_blocks_number_lines_as_split_does(tmp_path, monkeypatch):
    monkeypatch.setattr(batches, "READ_BYTES", 7)  # blocks cut mid-line, and lines longer than a block
    data = b'{"a": 1}\n\n{"b": 22222222222}\r\n\nx\ny'
    path = tmp_path / "f.jsonl"
    path.write_bytes(data)
    got = []
    for first, block, long in batches.line_blocks(path):
        assert not long
        got.extend((first + i, line) for i, line in enumerate(block.split(b"\n")))
    assert got == list(enumerate(data.split(b"\n"), start=1))
