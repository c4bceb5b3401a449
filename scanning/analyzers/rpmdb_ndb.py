"""Read the header blobs of an rpm ``Packages.db`` file (the NDB backend, SUSE and others).

Format: rpm ``lib/backend/ndb/rpmpkg.c``, as read by knqyf263/go-rpmdb ``pkg/ndb``: a 32-byte
header (``RpmP`` magic, version, generation, slot page count), 4 KiB slot pages of 16-byte
slots (``Slot`` magic, package index, block offset, block count), and blobs addressed in
16-byte blocks, each a 16-byte blob header (``BlbS`` magic, package index, checksum, length)
followed by the header blob. All integers little-endian.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from scanning.analyzers.records import SkippedEntry

_HEADER_MAGIC = int.from_bytes(b"RpmP", "little")
_SLOT_MAGIC = int.from_bytes(b"Slot", "little")
_BLOB_MAGIC = int.from_bytes(b"BlbS", "little")
_SLOTS_PER_PAGE = 4096 // 16
_BLOCK_SIZE = 16
# go-rpmdb's sanity cap on slot pages (2048 pages = 524,286 packages).
_MAX_SLOT_PAGES = 2048


class NdbError(ValueError):
    """The file is not an NDB package database we can read."""


def iter_ndb_blobs(reader: BinaryIO, size: int) -> Iterator[bytes | SkippedEntry]:
    """Every package blob, in slot order; a slot or blob that cannot be read is skipped."""
    reader.seek(0)
    header = reader.read(32)
    if len(header) != 32:
        raise NdbError(f"file of {size} bytes is too short for an NDB header")
    magic, version, _generation, slot_pages = struct.unpack_from("<4I", header)
    if magic != _HEADER_MAGIC or version != 0:
        raise NdbError("not an NDB package database (bad magic or version)")
    if not 1 <= slot_pages <= _MAX_SLOT_PAGES:
        raise NdbError(f"NDB slot page count {slot_pages} out of range")
    # The first two slots of the first page are taken by the 32-byte header.
    slot_count = slot_pages * _SLOTS_PER_PAGE - 2
    if 32 + slot_count * 16 > size:
        raise NdbError(f"NDB slot table of {slot_pages} pages is longer than the file")
    slot_table = reader.read(slot_count * 16)
    # Blobs do not overlap in a real database, so together they fit in the file; the check
    # stops a hostile slot table from pointing every slot at one huge blob.
    total_length = 0
    for slot_magic, package_index, block_offset, _block_count in struct.iter_unpack(
        "<4I", slot_table
    ):
        if slot_magic != _SLOT_MAGIC:
            yield SkippedEntry(reason=f"bad NDB slot magic {slot_magic:#x}")
            continue
        if package_index == 0:
            continue  # a free slot
        blob_start = block_offset * _BLOCK_SIZE
        if blob_start + 16 > size:
            yield SkippedEntry(
                reason=f"NDB blob of package {package_index} is beyond the end of the file"
            )
            continue
        reader.seek(blob_start)
        blob_magic, blob_index, _checksum, blob_length = struct.unpack("<4I", reader.read(16))
        if blob_magic != _BLOB_MAGIC:
            yield SkippedEntry(
                reason=f"bad NDB blob magic {blob_magic:#x} for package {package_index}"
            )
            continue
        if blob_index != package_index:
            yield SkippedEntry(
                reason=f"NDB slot for package {package_index} points at package {blob_index}"
            )
            continue
        if blob_start + 16 + blob_length > size:
            yield SkippedEntry(reason=f"NDB blob of package {package_index} is truncated")
            continue
        total_length += blob_length
        if total_length > size:
            raise NdbError("NDB blobs add up to more than the file: overlapping slots")
        yield reader.read(blob_length)
