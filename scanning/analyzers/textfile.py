"""Bounded reading of the small text files the package-database analyzers parse.

Image content is hostile: never read more than the analyzer's cap, and never let a decoding
problem escape as anything but ``AnalyzerError``.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator

from scanning.analyzers.base import AnalyzerInput
from scanning.errors import AnalyzerError


def read_capped(file: AnalyzerInput, max_size: int, analyzer: str) -> bytes:
    """All bytes of ``file``; ``AnalyzerError`` if it holds more than ``max_size`` bytes."""
    if file.size > max_size:
        raise AnalyzerError(
            f"{analyzer}: {file.path} is {file.size} bytes, over the {max_size}-byte cap"
        )
    data = file.reader.read(max_size + 1)
    if len(data) > max_size:
        raise AnalyzerError(f"{analyzer}: {file.path} holds more than {max_size} bytes")
    return data


# Bytes read at a time by ``iter_lines``: a few hundred records, never the whole file.
_CHUNK = 1024 * 1024


def iter_lines(file: AnalyzerInput, max_size: int, analyzer: str) -> Iterator[tuple[str, bool]]:
    """The lines of ``file`` one at a time, for parsers that keep only one record in memory.

    Each line comes decoded (``decode_lenient``), without its newline, with whether it had one:
    only the last line of a file cut short lacks it. ``AnalyzerError`` past ``max_size`` bytes.
    """
    if file.size > max_size:
        raise AnalyzerError(
            f"{analyzer}: {file.path} is {file.size} bytes, over the {max_size}-byte cap"
        )
    total = 0
    pieces: list[bytes] = []  # the current unfinished line, in pieces: joined once, so linear
    while chunk := file.reader.read(_CHUNK):
        total += len(chunk)
        if total > max_size:
            raise AnalyzerError(f"{analyzer}: {file.path} holds more than {max_size} bytes")
        cut = chunk.rfind(b"\n")
        if cut < 0:
            pieces.append(chunk)
            continue
        pieces.append(chunk[:cut])
        # Whole lines only, so a multi-byte character is never split before decoding.
        text = decode_lenient(b"".join(pieces))
        pieces = [chunk[cut + 1 :]]
        for line in text.split("\n"):
            yield line, True
    tail = b"".join(pieces)
    if tail:
        yield decode_lenient(tail), False


def decode_lenient(data: bytes) -> str:
    """UTF-8 text where bytes that are not UTF-8 survive as lone surrogates.

    Package databases hold free text (descriptions, maintainer names) in legacy encodings; the
    fields we report are checked against strict ASCII patterns, which a surrogate never matches,
    so bad bytes in a field we use fail loudly and bad bytes elsewhere do no harm.
    """
    return data.decode("utf-8", errors="surrogateescape")


def is_regular_file(mode: int) -> bool:
    """True for a regular file, or when the walker passed permission bits only (no type bits)."""
    file_type = stat.S_IFMT(mode)
    return file_type in (0, stat.S_IFREG)


def clean_text(value: str) -> str:
    """Free text from ``decode_lenient`` made safe to store: undecodable bytes become U+FFFD."""
    return value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
