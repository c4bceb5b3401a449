"""Bookkeeping for package databases read entry by entry: skipped entries and the record cap.

A malformed entry costs that entry only: it is skipped, and a warning names the file and the
line or record. A database with more than ``MAX_DB_RECORDS`` records is read up to the cap and
the rest is left unread, with a warning. Either way the analyzer's output carries the warnings
and the platform's inventory becomes partial, so nothing skipped looks healthy.

Warnings are bounded by count too: the first ``MAX_WARNINGS_PER_FILE`` skipped entries are
named one by one, the rest are counted in one line.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from scanning.analyzers.textfile import clean_text
from scanning.config import int_setting
from scanning.errors import ConfigError

logger = logging.getLogger(__name__)

MAX_WARNINGS_PER_FILE = 20


def max_db_records() -> int:
    """The ``MAX_DB_RECORDS`` setting: records read from one package database."""
    limit = int_setting("MAX_DB_RECORDS")
    if limit < 1:
        raise ConfigError(f"setting MAX_DB_RECORDS must be at least 1, got {limit}")
    return limit


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedEntry:
    """Yielded by a database walker in place of an entry it could not read, and walks on."""

    reason: str  # with ``where``: what was lost, said whole; without: why the entry is skipped
    where: str = ""  # a part bigger than one entry ("page 7"); empty: one entry, numbered


class MalformedEntry(Exception):
    """An entry's field does not hold what the database's own tool writes; the entry is skipped."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class EntryLog:
    """The records of one file: counted against the cap, skipped ones remembered (bounded)."""

    def __init__(self, analyzer: str, path: str, *, limit: int | None = None) -> None:
        self.analyzer = analyzer
        self.path = path
        self.limit = max_db_records() if limit is None else limit
        self.records = 0
        self.capped = False
        self._skipped: list[str] = []
        self._more_skipped = 0

    def admit(self) -> bool:
        """Count one more record; ``False`` once the cap is reached: stop reading the file."""
        if self.records >= self.limit:
            self.capped = True
            return False
        self.records += 1
        return True

    def skip(self, where: str, reason: str) -> None:
        """Record one skipped entry; ``where`` is ``line 12`` or ``record 3``."""
        self.note(where, f"{reason}; entry skipped")

    def note(self, where: str, text: str) -> None:
        """Record a part of the file left unread (``text`` says what was lost)."""
        if len(self._skipped) >= MAX_WARNINGS_PER_FILE:
            self._more_skipped += 1
            return
        # Undecodable bytes quoted from the file must not reach the stored warning as surrogates.
        warning = clean_text(f"{self.analyzer}: {self.path} {where}: {text}")
        logger.warning("%s", warning)
        self._skipped.append(warning)

    def warnings(self) -> tuple[str, ...]:
        found = list(self._skipped)
        if self._more_skipped:
            found.append(
                f"{self.analyzer}: {self.path}: {self._more_skipped} more skipped or unread parts"
            )
        if self.capped:
            text = (
                f"{self.analyzer}: {self.path}: more than {self.limit} records "
                "(MAX_DB_RECORDS); the rest was not read"
            )
            logger.warning("%s", text)
            found.append(text)
        return tuple(found)
