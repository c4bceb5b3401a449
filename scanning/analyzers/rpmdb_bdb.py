"""Read the values of an rpm ``Packages`` file: a BerkeleyDB hash database.

Only what rpm writes is supported: an unencrypted hash database whose values (header blobs) live
on overflow pages. Page layouts are libdb ``src/dbinc/db_page.h``; the walk follows
knqyf263/go-rpmdb ``pkg/bdb``. Every page number and offset is checked against the file, and
overflow chains are followed at most once per page, so hostile input ends in ``BdbError``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from scanning.analyzers.records import SkippedEntry

_HASH_MAGIC = 0x061561
_VALID_PAGE_SIZES = frozenset({512, 1024, 2048, 4096, 8192, 16384, 32768, 65536})
_PAGE_HEADER_SIZE = (
    26  # db_page.h PAGE: lsn, pgno, prev_pgno, next_pgno, entries, hf_offset, level, type
)

# db_page.h page types.
_P_HASH_UNSORTED = 2
_P_OVERFLOW = 7
_P_HASHMETA = 8
_P_HASH = 13
_H_OFFPAGE = 3  # hash item type: the value is on overflow pages
_HOFFPAGE_SIZE = 12  # type(1) unused(3) pgno(4) tlen(4)


class BdbError(ValueError):
    """The file is not a BerkeleyDB hash database we can read."""


def iter_bdb_values(reader: BinaryIO, size: int) -> Iterator[bytes | SkippedEntry]:
    """Yield every overflow-page value (an rpm header blob) of the hash database.

    A value, a page or the tail of a truncated file that cannot be read is yielded as a
    ``SkippedEntry`` and the walk goes on; a file that is no hash database raises ``BdbError``.
    """
    reader.seek(0)
    meta = reader.read(512)
    if len(meta) < 72:
        raise BdbError(f"file of {size} bytes is too short for a BerkeleyDB metadata page")
    # The metadata page is in the byte order of the machine that wrote it: the magic tells.
    order = "<"
    if struct.unpack_from("<I", meta, 12)[0] != _HASH_MAGIC:
        if struct.unpack_from(">I", meta, 12)[0] != _HASH_MAGIC:
            raise BdbError("not a BerkeleyDB hash database (bad magic)")
        order = ">"
    page_size, encryption, page_type = struct.unpack_from(order + "IBB", meta, 20)
    (last_page,) = struct.unpack_from(order + "I", meta, 32)
    if page_size not in _VALID_PAGE_SIZES:
        raise BdbError(f"unexpected BerkeleyDB page size {page_size}")
    if encryption != 0:
        raise BdbError(f"encrypted BerkeleyDB (algorithm {encryption}) is not supported")
    if page_type != _P_HASHMETA:
        raise BdbError(f"first page has type {page_type}, expected hash metadata")
    page_count = size // page_size
    if last_page >= page_count:
        # A copy cut short: read the pages that are there, and say that the rest is missing.
        yield SkippedEntry(
            where="metadata",
            reason=f"names last page {last_page} but the file has {page_count} pages: "
            f"truncated, pages {page_count} to {last_page} not read",
        )
        last_page = page_count - 1

    page_header = struct.Struct(order + "8xIIIHHBB")
    # rpm never shares an overflow page between two values: refusing reuse keeps the whole walk
    # linear in the file size, whatever a hostile index points at.
    consumed: set[int] = set()
    for page_number in range(last_page + 1):
        page = _read_page(reader, page_number, page_size)
        _, _, _, entries, _, _, kind = page_header.unpack_from(page, 0)
        if kind not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        if entries % 2:
            yield SkippedEntry(where=f"page {page_number}",
                               reason=f"hash page has an odd number of items ({entries}); "
                               "its packages were not read")
            continue
        if _PAGE_HEADER_SIZE + 2 * entries > page_size:
            yield SkippedEntry(where=f"page {page_number}",
                               reason=f"hash page index of {entries} items overflows the page; "
                               "its packages were not read")
            continue
        # Items alternate key, value; each index slot is a 2-byte offset into the page.
        offsets = struct.unpack_from(f"{order}{entries}H", page, _PAGE_HEADER_SIZE)
        for value_offset in offsets[1::2]:
            if value_offset >= page_size or page[value_offset] != _H_OFFPAGE:
                continue  # inline key/data items hold no rpm header
            if value_offset + _HOFFPAGE_SIZE > page_size:
                yield SkippedEntry(reason=f"hash page {page_number} item offset {value_offset} "
                                   "is out of range")
                continue
            (first_overflow,) = struct.unpack_from(order + "I", page, value_offset + 4)
            try:
                yield _read_overflow_chain(
                    reader, first_overflow, page_size, page_count, page_header, consumed
                )
            except BdbError as error:  # one value's chain is broken; the others stand
                yield SkippedEntry(reason=str(error))


def _read_page(reader: BinaryIO, page_number: int, page_size: int) -> bytes:
    reader.seek(page_number * page_size)
    page = reader.read(page_size)
    if len(page) != page_size:
        raise BdbError(f"page {page_number} is truncated")
    return page


def _read_overflow_chain(
    reader: BinaryIO,
    page_number: int,
    page_size: int,
    page_count: int,
    page_header: struct.Struct,
    consumed: set[int],
) -> bytes:
    chunks: list[bytes] = []
    while page_number != 0:
        if page_number >= page_count:
            raise BdbError(f"overflow page {page_number} is beyond the end of the file")
        if page_number in consumed:
            raise BdbError(f"overflow page {page_number} is read twice (a loop or a shared page)")
        consumed.add(page_number)
        page = _read_page(reader, page_number, page_size)
        _, _, next_page, _, used, _, kind = page_header.unpack_from(page, 0)
        if kind != _P_OVERFLOW:
            raise BdbError(f"page {page_number} in an overflow chain has type {kind}")
        # On overflow pages hf_offset counts the bytes used; only the last page is partial.
        end = _PAGE_HEADER_SIZE + used if next_page == 0 else page_size
        if end > page_size:
            raise BdbError(f"overflow page {page_number} claims {used} bytes")
        chunks.append(page[_PAGE_HEADER_SIZE:end])
        page_number = next_page
    return b"".join(chunks)
