"""One streaming pass over one layer blob: decompress, walk the tar, feed the analyzers.

The blob arrives as an iterable of byte chunks (a registry response, a file) and is read once:
its sha256 is computed on the way and compared with the layer digest at the end; the
decompressed tar is walked by a small reader of our own (POSIX ustar, GNU long names and PAX
extended headers, https://pubs.opengroup.org/onlinepubs/9699919799/utilities/pax.html) so that
every allocation is bounded: ``tarfile`` in stream mode reads a PAX header of any size into
memory, and a hostile layer can declare a 2 GB one.

Only regular files some analyzer asked for (``required(path, mode)``) are copied out, into a
spooled temporary file (memory up to ``spool_memory_bytes``, then disk) capped at the largest
``max_file_size`` of the analyzers that want it. Everything else is skipped as it streams by.

Compression is detected from the first bytes, not the media type (registries and ``docker save``
mislabel layers): gzip ``1f 8b`` (RFC 1952), zstd ``28 b5 2f fd`` (RFC 8878), else plain tar.
gzip goes through ``isal`` when installed (about 2.5x faster inflate than zlib).

Hostile input: names are normalised inside the root (``/abs``, ``../..`` cannot leave it),
decompressed bytes and header sizes are capped (``LayerLimits``), truncation and bad
compression raise ``LayerError`` naming the layer, as does a digest mismatch. The entry count
is capped too (``MAX_LAYER_ENTRIES``): entries past the cap are not read (the blob is still
hashed to its end) and the result carries an error naming the cap, so the platform is
``partial``, never a confident ``complete``. Every per-entry cost is constant: state is indexed
by path, so a layer of N entries costs O(N).
"""

from __future__ import annotations

import hashlib
import io
import logging
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import IO, Any, BinaryIO, Protocol, cast

import zstandard

from scanning.analyzers.base import Analyzer, AnalyzerInput
from scanning.config import int_setting
from scanning.errors import AnalyzerError, ConfigError, LayerError
from scanning.layer_types import (
    PATH_MAX,
    AnalyzedFile,
    LayerResult,
    MessageList,
    normalize_member_path,
)

try:
    from isal import igzip as _gzip_module
except ImportError:  # pragma: no cover - isal is in requirements.txt; zlib is the fallback
    import gzip as _gzip_module  # type: ignore[no-redef]

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BLOCK = 512
READ_SIZE = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
GiB = 1 << 30
MiB = 1 << 20
# Warnings one layer keeps (hard links to unread files, files over an analyzer's cap); the
# rest are counted.
MAX_LAYER_WARNINGS = 100
# OCI image-spec descriptor.md: registered digest algorithms.
DIGEST_ALGORITHMS = ("sha256", "sha512")


class Compression(StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"


@dataclass(frozen=True, slots=True, kw_only=True)
class LayerLimits:
    """Caps against decompression bombs and hostile archives.

    A layer over the byte or header cap fails; one over ``max_entries`` is read up to the cap
    and its result says so (the platform is ``partial``): what the layer holds in memory grows
    with its entry count, whatever their size.
    """

    max_decompressed_bytes: int = 32 * GiB
    max_entries: int = 1_000_000
    # Paths and link targets the layer keeps (links, whiteouts, analysed files): each is at
    # most PATH_MAX, and this bounds their sum, like max_entries bounds their count.
    max_kept_path_bytes: int = 64 * MiB
    max_header_bytes: int = 1 * MiB  # one PAX record set or GNU long name
    spool_memory_bytes: int = 1 * MiB

    @classmethod
    def from_settings(cls) -> LayerLimits:
        """The defaults, with ``max_entries`` from the ``MAX_LAYER_ENTRIES`` setting."""
        max_entries = int_setting("MAX_LAYER_ENTRIES")
        if max_entries < 1:
            raise ConfigError(f"setting MAX_LAYER_ENTRIES must be positive, got {max_entries}")
        return cls(max_entries=max_entries)


class BlobReader(io.RawIOBase):
    """A raw stream over byte chunks that hashes and counts what passes through it."""

    def __init__(self, chunks: Iterable[bytes], algorithm: str = "sha256") -> None:
        super().__init__()
        self._chunks: Iterator[bytes] = iter(chunks)
        self._current = memoryview(b"")
        self.algorithm = algorithm
        self.hasher = hashlib.new(algorithm)
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self.hasher.update(chunk)
            self.size += len(chunk)
            self._current = memoryview(chunk)
        count = min(len(buffer), len(self._current))
        buffer[:count] = self._current[:count]
        self._current = self._current[count:]
        return count

    def drain(self) -> None:
        while self.readinto(bytearray(READ_SIZE)):
            pass

    @property
    def digest(self) -> str:
        return f"{self.algorithm}:{self.hasher.hexdigest()}"


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


def open_decompressed(raw: BlobReader) -> tuple[Compression, _Readable]:
    """Detect the compression from the magic bytes and return a reader of the plain tar."""
    buffered = io.BufferedReader(raw, READ_SIZE)
    head = buffered.peek(4)[:4]
    if head.startswith(GZIP_MAGIC):
        return Compression.GZIP, _gzip_module.GzipFile(fileobj=buffered, mode="rb")
    if head.startswith(ZSTD_MAGIC):
        reader = zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)
        return Compression.ZSTD, reader
    return Compression.NONE, buffered


class _TarStream:
    """Reads the decompressed stream in big chunks, hands out 512-byte headers, skips data."""

    def __init__(self, source: _Readable, *, max_bytes: int, layer: str) -> None:
        self._source = source
        self._buffer = b""
        self._position = 0
        self.total = 0
        self._max_bytes = max_bytes
        self._layer = layer

    def _read_source(self, size: int) -> bytes:
        data = self._source.read(size)
        self.total += len(data)
        if self.total > self._max_bytes:
            raise LayerError(
                f"layer {self._layer} decompresses to more than {self._max_bytes} bytes "
                "(decompression bomb cap)"
            )
        return data

    def read_exact(self, size: int) -> bytes:
        """``size`` bytes, or fewer only at the very end of the stream."""
        available = len(self._buffer) - self._position
        if available < size:
            pieces = [self._buffer[self._position:]]
            while available < size:
                data = self._read_source(max(READ_SIZE, size - available))
                if not data:
                    break
                pieces.append(data)
                available += len(data)
            self._buffer = b"".join(pieces)
            self._position = 0
        end = min(self._position + size, len(self._buffer))
        data = self._buffer[self._position:end]
        self._position = end
        return data

    def copy(self, size: int, sink: Callable[[bytes], object] | None) -> int:
        """Pass the next ``size`` bytes to ``sink``, or skip them when ``sink`` is None."""
        remaining = size
        while remaining:
            if self._position >= len(self._buffer):
                self._buffer = self._read_source(READ_SIZE)
                self._position = 0
                if not self._buffer:
                    break
            end = min(self._position + remaining, len(self._buffer))
            if sink is not None:
                sink(self._buffer[self._position:end])
            remaining -= end - self._position
            self._position = end
        return size - remaining

    def drain(self) -> None:
        while self._read_source(READ_SIZE):
            pass


@dataclass(frozen=True, slots=True)
class _Header:
    name: str
    mode: int
    size: int
    typeflag: bytes
    linkname: str


def _number(field: bytes) -> int:
    """A ustar numeric field: octal text, or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return value - (1 << (8 * len(field) - 8)) if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    return int(text, 8) if text else 0


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _signed_checksum(block: bytes) -> int:
    unsigned = block[:148] + b" " * 8 + block[156:]
    return sum(unsigned) - 256 * sum(1 for byte in unsigned if byte >= 128)


def _parse_header(block: bytes, where: str) -> _Header:
    try:
        checksum = _number(block[148:156])
    except ValueError as error:
        raise LayerError(f"{where}: malformed tar header checksum") from error
    # The checksum field counts as eight spaces; some old tars summed signed bytes.
    computed = sum(block) - sum(block[148:156]) + 8 * 32
    if checksum != computed and checksum != _signed_checksum(block):
        raise LayerError(f"{where}: tar header checksum mismatch (not a tar, or corrupt)")
    name = _text(block[0:100])
    # POSIX ustar splits long names into prefix + name; GNU tar uses those bytes for times.
    if block[257:265] == b"ustar\x0000":
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    try:
        mode = _number(block[100:108])
        size = _number(block[124:136])
    except ValueError as error:
        raise LayerError(f"{where}: malformed tar header number") from error
    if size < 0:
        raise LayerError(f"{where}: negative tar entry size")
    return _Header(name=name, mode=mode, size=size, typeflag=block[156:157],
                   linkname=_text(block[157:257]))


def _parse_pax(data: bytes, where: str) -> dict[str, str]:
    """PAX extended header records: ``"%d %s=%s\\n"`` (length, key, value)."""
    records: dict[str, str] = {}
    position = 0
    while position < len(data):
        space = data.find(b" ", position)
        if space < 0:
            break
        try:
            length = int(data[position:space])
        except ValueError as error:
            raise LayerError(f"{where}: malformed PAX header") from error
        if length <= 0 or position + length > len(data):
            raise LayerError(f"{where}: malformed PAX record length")
        record = data[space + 1:position + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        position += length
    return records


_REGULAR = (b"0", b"\0", b"7", b"")
_HARDLINK = b"1"
_SYMLINK = b"2"
_DIRECTORY = b"5"
_NO_DATA = (_HARDLINK, _SYMLINK, b"3", b"4", _DIRECTORY, b"6")


def _padded(size: int) -> int:
    return (size + BLOCK - 1) // BLOCK * BLOCK


class LayerScanner:
    """Walks one layer and collects what the analyzers found (one instance per layer)."""

    def __init__(self, *, digest: str, analyzers: tuple[Analyzer, ...], analyzer_version: str,
                 limits: LayerLimits) -> None:
        self.digest = digest
        self.analyzers = analyzers
        self.analyzer_version = analyzer_version
        self.limits = limits
        self.files: dict[str, dict[str, AnalyzedFile]] = {}  # path -> analyzer name -> output
        self.whiteouts: list[str] = []
        self.opaque_dirs: list[str] = []
        self.symlinks: dict[str, str] = {}
        self.hardlinks: dict[str, str] = {}
        self.warnings = MessageList(MAX_LAYER_WARNINGS)
        self.errors: list[str] = []
        self.entries = 0
        self.long_paths = 0
        self.kept_path_bytes = 0

    def walk(self, stream: _TarStream) -> None:
        long_name: str | None = None
        long_link: str | None = None
        pax: dict[str, str] = {}
        while True:
            block = stream.read_exact(BLOCK)
            if len(block) < BLOCK:
                if not block and not self.entries:
                    return  # an empty layer blob: nothing to walk
                raise LayerError(f"layer {self.digest}: tar stream truncated")
            if block == bytes(BLOCK):
                return  # end-of-archive marker (two zero blocks; the rest is padding)
            header = _parse_header(block, f"layer {self.digest}")
            if header.typeflag in (b"L", b"K", b"x", b"g"):
                if header.size > self.limits.max_header_bytes:
                    raise LayerError(
                        f"layer {self.digest}: extended tar header of {header.size} bytes "
                        f"exceeds the cap of {self.limits.max_header_bytes}"
                    )
                data = stream.read_exact(_padded(header.size))
                if len(data) < _padded(header.size):
                    raise LayerError(f"layer {self.digest}: tar stream truncated")
                payload = data[:header.size]
                if header.typeflag == b"L":
                    long_name = _text(payload)
                elif header.typeflag == b"K":
                    long_link = _text(payload)
                elif header.typeflag == b"x":
                    pax = _parse_pax(payload, f"layer {self.digest}")
                continue  # 'g' (global PAX) carries nothing we use
            if self.entries == self.limits.max_entries:
                self.errors.append(
                    f"more than {self.limits.max_entries} entries (MAX_LAYER_ENTRIES); "
                    "entries past the cap were not read"
                )
                return
            if self.kept_path_bytes > self.limits.max_kept_path_bytes:
                self.errors.append(
                    f"more than {self.limits.max_kept_path_bytes} bytes of paths and link "
                    "targets to keep; entries past the cap were not read"
                )
                return
            self.entries += 1
            name = pax.get("path", long_name if long_name is not None else header.name)
            linkname = pax.get("linkpath", long_link if long_link is not None else header.linkname)
            size = int(pax["size"]) if "size" in pax else header.size
            long_name = long_link = None
            pax = {}
            self._entry(stream, header, name, linkname, size)

    def _entry(self, stream: _TarStream, header: _Header, name: str, linkname: str,
               size: int) -> None:
        path = normalize_member_path(name)
        # Data follows regular files and unknown types; links, directories and devices have
        # none whatever their size field says (as tarfile and GNU tar read it).
        data_size = 0 if header.typeflag in _NO_DATA else size
        if len(path) > PATH_MAX or (header.typeflag == _HARDLINK and len(linkname) > PATH_MAX):
            # No container can hold such a path; kept, it would cost memory per byte.
            self.long_paths += 1
            self._skip(stream, data_size)
            return
        base = path.rsplit("/", 1)[-1]
        directory = path.rsplit("/", 1)[0] if "/" in path else ""
        if base.startswith(WHITEOUT_PREFIX):
            self.kept_path_bytes += len(path)
            if base == OPAQUE_MARKER:
                self.opaque_dirs.append(directory)
            elif not base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
                # Other ".wh..wh." names are AUFS bookkeeping (e.g. .wh..wh.plnk): no meaning.
                target = base[len(WHITEOUT_PREFIX):]
                self.whiteouts.append(f"{directory}/{target}" if directory else target)
            self._skip(stream, data_size)
            return
        if not path:
            self._skip(stream, data_size)
            return
        if header.typeflag in (_SYMLINK, _HARDLINK):
            self.kept_path_bytes += len(path) + min(len(linkname), PATH_MAX + 1)
        if header.typeflag == _SYMLINK:
            self._drop(path)
            # A longer target resolves to nothing whatever its content (ENAMETOOLONG).
            self.symlinks[path] = linkname[:PATH_MAX + 1]
        elif header.typeflag == _HARDLINK:
            self._hardlink(path, normalize_member_path(linkname))
        elif header.typeflag in _REGULAR:
            self._regular(stream, path, stat.S_IFREG | (header.mode & 0o7777), size)
            return
        self._skip(stream, data_size)

    def _skip(self, stream: _TarStream, size: int) -> None:
        padded = _padded(size)
        if stream.copy(padded, None) < padded:
            raise LayerError(f"layer {self.digest}: tar stream truncated")

    def _drop(self, path: str) -> None:
        """A later entry of the same layer at ``path`` replaces an earlier one."""
        self.files.pop(path, None)
        self.symlinks.pop(path, None)
        self.hardlinks.pop(path, None)

    def _hardlink(self, path: str, target: str) -> None:
        self._drop(path)
        self.hardlinks[path] = target
        # A hard link's target precedes it in the same tar; reuse what its analysis found.
        wanted = [a for a in self.analyzers if a.required(path, stat.S_IFREG | 0o644)]
        target_outputs = self.files.get(target, {})
        for analyzer in wanted:
            found = target_outputs.get(analyzer.name)
            if found is None:
                self.warnings.add(
                    f"hard link {path} -> {target}: target not read by {analyzer.name}"
                )
                continue
            self.files.setdefault(path, {})[analyzer.name] = replace(
                found,
                path=path,
                packages=tuple(replace(package, path=path) for package in found.packages),
            )

    def _regular(self, stream: _TarStream, path: str, mode: int, size: int) -> None:
        self._drop(path)
        wanted = [a for a in self.analyzers if a.required(path, mode)]
        fitting = [a for a in wanted if size <= a.max_file_size]
        for analyzer in wanted:
            if analyzer not in fitting:
                self.warnings.add(
                    f"{path}: {size} bytes is over {analyzer.name}'s cap of "
                    f"{analyzer.max_file_size}; not analyzed"
                )
        if not fitting:
            self._skip(stream, size)
            return
        self.kept_path_bytes += len(path) * len(fitting)
        with tempfile.SpooledTemporaryFile(max_size=self.limits.spool_memory_bytes) as spool:
            copied = stream.copy(size, spool.write)
            if copied < size or stream.copy(_padded(size) - size, None) < _padded(size) - size:
                raise LayerError(f"layer {self.digest}: tar stream truncated inside {path}")
            outputs = self.files.setdefault(path, {})
            for analyzer in fitting:
                spool.seek(0)
                file = AnalyzerInput(path=path, size=size, reader=cast(BinaryIO, spool), mode=mode)
                outputs[analyzer.name] = _run_analyzer(analyzer, file)

    def result(self, *, compression: Compression, compressed_size: int,
               uncompressed_size: int) -> LayerResult:
        errors = tuple(self.errors)
        if self.long_paths:
            errors += (f"{self.long_paths} entries with a path over {PATH_MAX} bytes "
                       "(PATH_MAX) were not read",)
        return LayerResult(
            digest=self.digest,
            analyzer_set_version=self.analyzer_version,
            compression=compression.value,
            compressed_size=compressed_size,
            uncompressed_size=uncompressed_size,
            entries=self.entries,
            files=tuple(outputs[name] for path, outputs in sorted(self.files.items())
                        for name in sorted(outputs)),
            whiteouts=tuple(self.whiteouts),
            opaque_dirs=tuple(self.opaque_dirs),
            symlinks=tuple(sorted(self.symlinks.items())),
            hardlinks=tuple(sorted(self.hardlinks.items())),
            warnings=self.warnings.as_tuple(),
            errors=errors,
        )


def _run_analyzer(analyzer: Analyzer, file: AnalyzerInput) -> AnalyzedFile:
    """Analyzer failures are recorded on the file, never swallowed and never fatal."""
    try:
        output = analyzer.analyze(file)
    except AnalyzerError as error:
        log.warning("analyzer %s failed on %s: %s", analyzer.name, file.path, error)
        return AnalyzedFile(path=file.path, analyzer=analyzer.name, error=str(error))
    except Exception as error:  # an analyzer bug must not take the scan down with it
        log.exception("analyzer %s crashed on %s", analyzer.name, file.path)
        return AnalyzedFile(path=file.path, analyzer=analyzer.name,
                            error=f"{type(error).__name__}: {error}")
    return AnalyzedFile(path=file.path, analyzer=analyzer.name, packages=output.packages,
                        os=output.os, warnings=output.warnings)


def analyze_tar(chunks: Iterable[bytes], *, digest: str, analyzers: tuple[Analyzer, ...],
               analyzer_version: str, limits: LayerLimits | None = None,
               expected_size: int | None = None) -> LayerResult:
    """Read one layer blob once and return what the analyzers found in it.

    Raises ``LayerError`` (naming the layer) for truncated or corrupt data, a digest or size
    mismatch, or a layer over the byte or header cap in ``limits`` (default: the settings).
    """
    limits = limits or LayerLimits.from_settings()
    algorithm = digest.partition(":")[0]
    if algorithm not in DIGEST_ALGORITHMS:
        raise LayerError(f"layer {digest}: unsupported digest algorithm {algorithm!r}")
    raw = BlobReader(chunks, algorithm)
    scanner = LayerScanner(digest=digest, analyzers=analyzers, analyzer_version=analyzer_version,
                           limits=limits)
    try:
        compression, plain = open_decompressed(raw)
        stream = _TarStream(plain, max_bytes=limits.max_decompressed_bytes, layer=digest)
        scanner.walk(stream)
        # Read to the end: trailing padding must still decompress cleanly, and the digest
        # covers every byte of the blob.
        stream.drain()
        raw.drain()
    except LayerError:
        raise
    except (EOFError, OSError, zlib.error, zstandard.ZstdError, ValueError) as error:
        raise LayerError(f"layer {digest} cannot be read: {error}") from error
    if raw.digest != digest:
        raise LayerError(f"layer {digest} digest mismatch: content hashes to {raw.digest}")
    if expected_size is not None and raw.size != expected_size:
        raise LayerError(f"layer {digest} is {raw.size} bytes, the manifest says {expected_size}")
    return scanner.result(compression=compression, compressed_size=raw.size,
                          uncompressed_size=stream.total)


@dataclass(frozen=True, slots=True, kw_only=True)
class TarMember:
    """Where a regular file's data lies in a (decompressed) tar."""

    offset: int
    size: int


def index_tar(file: IO[bytes], *, where: str, max_members: int,
              max_header_bytes: int = 1 * MiB) -> dict[str, TarMember]:
    """The regular files of a seekable tar by normalised name, reading headers only.

    For an outer archive (``docker save``) that is read member by member afterwards. Headers go
    through the same bounded parser as layers (``tarfile`` reads a PAX header of any size into
    memory, and a 1.5 GiB one took 1.6 GB); data is skipped with ``seek``. Raises
    ``LayerError`` prefixed with ``where`` for a malformed or oversized header, or more than
    ``max_members`` entries. Names over ``PATH_MAX`` are left out.
    """
    members: dict[str, TarMember] = {}
    entries = 0
    long_name: str | None = None
    pax: dict[str, str] = {}
    while True:
        block = file.read(BLOCK)
        if len(block) < BLOCK or block == bytes(BLOCK):
            return members  # end of archive (or a truncated tail: member reads check sizes)
        header = _parse_header(block, where)
        if header.typeflag in (b"L", b"K", b"x", b"g"):
            if header.size > max_header_bytes:
                raise LayerError(f"{where}: extended tar header of {header.size} bytes exceeds "
                                 f"the cap of {max_header_bytes}")
            payload = file.read(_padded(header.size))[:header.size]
            if header.typeflag == b"L":
                long_name = _text(payload)
            elif header.typeflag == b"x":
                pax = _parse_pax(payload, where)
            continue
        entries += 1
        if entries > max_members:
            raise LayerError(f"{where}: more than {max_members} tar entries")
        name = pax.get("path", long_name if long_name is not None else header.name)
        size = int(pax["size"]) if "size" in pax else header.size
        long_name, pax = None, {}
        data_size = 0 if header.typeflag in _NO_DATA else size
        path = normalize_member_path(name)
        # A longer name is no file docker wrote; kept, it would cost memory per byte.
        if header.typeflag in _REGULAR and len(path) <= PATH_MAX:
            members[path] = TarMember(offset=file.tell(), size=size)
        file.seek(_padded(data_size), io.SEEK_CUR)


def file_chunks(file: IO[bytes], size: int = READ_SIZE) -> Iterator[bytes]:
    """Chunks of an open binary file, for ``analyze_tar``."""
    while chunk := file.read(size):
        yield chunk
