"""Reading package databases line by line in bounded chunks."""

from __future__ import annotations

import io

import pytest

from scanning.analyzers import textfile
from scanning.analyzers.base import AnalyzerInput
from scanning.errors import AnalyzerError


def lines(data: bytes, max_size: int = 1 << 20) -> list[tuple[str, bool]]:
    file = AnalyzerInput(path="x", size=len(data), reader=io.BytesIO(data))
    return list(textfile.iter_lines(file, max_size, "test"))


@pytest.fixture(autouse=True)
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks of 4 bytes put every boundary case inside short inputs.
    monkeypatch.setattr(textfile, "_CHUNK", 4)


def test_lines_across_chunks_keep_multibyte_characters_whole() -> None:
    assert lines("P:caf\u00e9\nV:1\n\n".encode()) == [("P:caf\u00e9", True), ("V:1", True),
                                                      ("", True)]


def test_line_longer_than_a_chunk_is_read_whole() -> None:
    assert lines(b"T:" + b"x" * 50 + b"\nP:a\n") == [("T:" + "x" * 50, True), ("P:a", True)]


def test_last_line_without_newline_says_so() -> None:
    assert lines(b"P:a\nV:1") == [("P:a", True), ("V:1", False)]


def test_bytes_past_the_cap_are_an_error_even_when_size_says_less() -> None:
    file = AnalyzerInput(path="x", size=4, reader=io.BytesIO(b"P:a\nV:1\n"))
    with pytest.raises(AnalyzerError, match="holds more than 4 bytes"):
        list(textfile.iter_lines(file, 4, "test"))
