"""Decode one RPM header blob, as every rpmdb backend (sqlite, BerkeleyDB, NDB) stores it.

Layout (rpm ``lib/header.c``, ``headerImport``; knqyf263/go-rpmdb ``pkg/entry.go``), all integers
big-endian::

    il (int32)  dl (int32)  il x {tag int32, type uint32, offset int32, count uint32}  dl bytes

Only the handful of tags a scanner needs are decoded. Every offset is checked against the data
store, so a hostile blob gives ``HeaderError``, never an IndexError or a huge allocation.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# rpm lib/rpmtag.h
TAG_NAME = 1000
TAG_VERSION = 1001
TAG_RELEASE = 1002
TAG_EPOCH = 1003
TAG_LICENSE = 1014
TAG_VENDOR = 1011
TAG_ARCH = 1022
TAG_SOURCERPM = 1044
TAG_MODULARITYLABEL = 5096

# rpm lib/rpmtypes.h (rpmTagType)
TYPE_INT32 = 4
TYPE_STRING = 6
TYPE_STRING_ARRAY = 8
TYPE_I18NSTRING = 9

# rpm lib/header.c: hdrchkTags / headerMaxbytes.
_MAX_INDEX_ENTRIES = 0xFFFF
_MAX_HEADER_BYTES = 256 * 1024 * 1024
_ENTRY_SIZE = 16

_STRING_TAGS = frozenset(
    {
        TAG_NAME,
        TAG_VERSION,
        TAG_RELEASE,
        TAG_LICENSE,
        TAG_VENDOR,
        TAG_ARCH,
        TAG_SOURCERPM,
        TAG_MODULARITYLABEL,
    }
)
# go-rpmdb (and so trivy) read "(none)" in these tags as unset.
_NONE_MEANS_EMPTY = frozenset({TAG_SOURCERPM, TAG_LICENSE, TAG_VENDOR})


class HeaderError(ValueError):
    """The blob is not a well-formed RPM header."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RpmHeader:
    name: str
    version: str
    release: str
    epoch: int | None
    arch: str
    source_rpm: str
    license: str
    vendor: str
    modularity_label: str


def parse_header(blob: bytes) -> RpmHeader:
    """Decode the tags we need from one header blob."""
    if len(blob) < 8:
        raise HeaderError(f"header blob of {len(blob)} bytes is shorter than its 8-byte preamble")
    index_length, data_length = struct.unpack_from(">ii", blob, 0)
    if not 1 <= index_length <= _MAX_INDEX_ENTRIES:
        raise HeaderError(f"header index length {index_length} out of range")
    if not 0 <= data_length <= _MAX_HEADER_BYTES:
        raise HeaderError(f"header data length {data_length} out of range")
    data_start = 8 + index_length * _ENTRY_SIZE
    if data_start + data_length > len(blob):
        raise HeaderError(
            f"header declares {data_start + data_length} bytes but the blob has {len(blob)}"
        )
    store = _DataStore(blob=blob, start=data_start, length=data_length)

    strings: dict[int, str] = {}
    epoch: int | None = None
    # Later entries win: rpm appends "dribble" entries after the immutable region, and they
    # override it (go-rpmdb hdrblobImport keeps the last entry per tag).
    for tag, tag_type, offset, count in struct.iter_unpack(">iIiI", blob[8:data_start]):
        if tag in _STRING_TAGS:
            strings[tag] = store.string(tag, tag_type, offset, count)
        elif tag == TAG_EPOCH:
            epoch = store.int32(tag, tag_type, offset, count)

    def text(tag: int) -> str:
        value = strings.get(tag, "")
        if tag in _NONE_MEANS_EMPTY and value == "(none)":
            return ""
        return value

    return RpmHeader(
        name=text(TAG_NAME),
        version=text(TAG_VERSION),
        release=text(TAG_RELEASE),
        epoch=epoch,
        arch=text(TAG_ARCH),
        source_rpm=text(TAG_SOURCERPM),
        license=text(TAG_LICENSE),
        vendor=text(TAG_VENDOR),
        modularity_label=text(TAG_MODULARITYLABEL),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class _DataStore:
    """The data part of a blob, addressed by tag offsets, without copying it."""

    blob: bytes
    start: int
    length: int

    def string(self, tag: int, tag_type: int, offset: int, count: int) -> str:
        if tag_type not in (TYPE_STRING, TYPE_I18NSTRING, TYPE_STRING_ARRAY) or count < 1:
            raise HeaderError(f"tag {tag} has type {tag_type}/count {count}, expected a string")
        if not 0 <= offset < self.length:
            raise HeaderError(
                f"tag {tag} offset {offset} outside the {self.length}-byte data store"
            )
        begin = self.start + offset
        end = self.blob.find(b"\x00", begin, self.start + self.length)
        if end < 0:
            raise HeaderError(f"tag {tag} string is not NUL-terminated")
        # An I18N string or a string array holds several strings: the first is the default.
        return self.blob[begin:end].decode("utf-8", errors="replace")

    def int32(self, tag: int, tag_type: int, offset: int, count: int) -> int:
        if tag_type != TYPE_INT32 or count < 1:
            raise HeaderError(f"tag {tag} has type {tag_type}/count {count}, expected int32")
        if not 0 <= offset <= self.length - 4:
            raise HeaderError(
                f"tag {tag} offset {offset} outside the {self.length}-byte data store"
            )
        (value,) = struct.unpack_from(">i", self.blob, self.start + offset)
        return int(value)
