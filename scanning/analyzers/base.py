"""The analyzer interface.

An analyzer declares the files it needs with a cheap, pure ``required(path)``; the layer walker
calls ``analyze`` once per matching regular file with a bounded, seekable reader. Paths are
relative to the image root, without a leading slash (``var/lib/dpkg/status``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO, Protocol

from scanning.model import OSInfo, Package

# Default cap on one file handed to an analyzer; an analyzer may declare its own.
DEFAULT_MAX_FILE_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzerInput:
    path: str
    size: int
    reader: BinaryIO  # seekable, positioned at 0, holds exactly ``size`` bytes
    mode: int = 0o644


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzerOutput:
    packages: tuple[Package, ...] = ()
    os: OSInfo | None = None
    # Entries that could not be read and were skipped, each naming the file and the line or
    # record: the rest of the file stands, and the platform's inventory becomes partial.
    warnings: tuple[str, ...] = ()


class Analyzer(Protocol):
    name: str
    version: int  # bump when output changes: part of the layer-cache key
    max_file_size: int

    def required(self, path: str, mode: int) -> bool:
        """Pure and cheap: called for every entry of every layer."""
        ...

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        """Parse one file; never return a guess.

        A malformed entry is skipped and named in ``warnings``; ``AnalyzerError`` is for a file
        that cannot be read at all.
        """
        ...
