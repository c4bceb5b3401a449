"""Go modules compiled into an executable, from the build info the Go linker embeds.

The blob starts with ``\\xff Go buildinf:`` at a 16-byte aligned address near the start of the
data segment (Go ``src/debug/buildinfo/buildinfo.go``): either the Go 1.18+ inline form
(flag bit 2: two varint-prefixed strings after the 32-byte header) or the older form holding
two pointers to Go string headers, resolved through the ELF/PE/Mach-O segment tables. The
module text is ``runtime/debug.ParseBuildInfo``'s format: ``path``, ``mod``, ``dep`` and ``=>``
(replacement) lines, tab-separated.

Output follows trivy (``pkg/dependency/parser/golang/binary/parse.go``): the main module (a
``(devel)`` version becomes empty, or the semver stamped with ``-ldflags -X …version=``), every
dependency (its replacement when there is one), and the toolchain as package ``stdlib`` with
a ``v`` prefix (``go1.22.1`` -> ``v1.22.1``) like every other Go module version.

Files that are not ELF/PE/Mach-O, or whose headers are truncated or malformed, or that carry no
build info, give empty output: most executable files in an image are not Go binaries. A file
whose build info blob is present but unreadable raises ``AnalyzerError``; a module line in it
that cannot be read is skipped with a warning naming the line, the other modules stand.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import struct
from dataclasses import dataclass
from typing import BinaryIO

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.records import EntryLog
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

BUILDINFO_MAGIC = b"\xff Go buildinf:"
_BUILDINFO_ALIGN = 16
_BUILDINFO_HEADER_SIZE = 32
_SEARCH_WINDOW = 64 * 1024  # Go reads the first 64 KiB of the data start for the blob
_MAX_MODINFO = 16 * 1024 * 1024  # real module info is a few KiB; a cap keeps hostile lengths cheap
_MAX_HEADER_TABLE = 16 * 1024 * 1024

# Executables under these paths are not Go programs worth opening (kernel interfaces, docs).
_SKIPPED_PREFIXES = ("proc/", "sys/", "dev/", "usr/share/doc/", "usr/share/man/")
_SKIPPED_SUFFIXES = (
    ".sh",
    ".bash",
    ".py",
    ".pl",
    ".rb",
    ".js",
    ".php",
    ".txt",
    ".md",
    ".json",
    ".yaml",
    ".yml",
    ".xml",
    ".html",
    ".conf",
    ".cfg",
    ".ini",
    ".jar",
    ".a",
    ".o",
    ".h",
    ".c",
)


class _NotGoBinary(Exception):
    """Internal: the file is not an executable we can read, or has no Go build info."""


@dataclass(frozen=True, slots=True)
class _Region:
    """A run of virtual addresses backed by file bytes."""

    address: int
    size: int
    offset: int


class _Executable:
    def __init__(self, reader: BinaryIO, size: int, regions: list[_Region], data_start: int):
        self.reader = reader
        self.size = size
        self.regions = regions
        self.data_start = data_start

    def read_data(self, address: int, length: int) -> bytes:
        """Up to ``length`` bytes at a virtual address, as Go's ``exe.ReadData``."""
        for region in self.regions:
            if region.address <= address < region.address + region.size:
                count = min(length, region.address + region.size - address)
                start = region.offset + (address - region.address)
                if start < 0 or start + count > self.size:
                    raise _NotGoBinary("segment extends past the end of the file")
                return _read_at(self.reader, start, count)
        raise _NotGoBinary(f"address {address:#x} is not mapped")


@dataclass(frozen=True, slots=True, kw_only=True)
class _Module:
    path: str
    version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildInfo:
    go_version: str
    main: _Module | None
    deps: tuple[_Module, ...]
    settings: tuple[tuple[str, str], ...]
    skipped: tuple[tuple[int, str], ...] = ()  # (line, why) of module lines not understood


class GoBinaryAnalyzer:
    name = "gobinary"
    version = 2
    max_file_size = 1024 * 1024 * 1024  # only headers and the build info blob are read

    def required(self, path: str, mode: int) -> bool:
        if not mode & 0o111:
            return False
        if path.startswith(_SKIPPED_PREFIXES):
            return False
        return not path.lower().endswith(_SKIPPED_SUFFIXES)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        try:
            info = read_build_info(file.reader, file.size)
        except _NotGoBinary as exc:
            logger.debug("%s: not a Go binary: %s", file.path, exc)
            return AnalyzerOutput()
        entries = EntryLog(self.name, file.path)
        for line_number, reason in info.skipped:
            entries.skip(f"build info line {line_number}", reason)
        return AnalyzerOutput(packages=_to_packages(info, file.path), warnings=entries.warnings())


def read_build_info(reader: BinaryIO, size: int) -> BuildInfo:
    """Parse the embedded build info. Raises ``_NotGoBinary`` or ``AnalyzerError``."""
    ident = _read_at(reader, 0, 16) if size >= 16 else b""
    if len(ident) < 16:
        raise _NotGoBinary("file shorter than an executable header")
    if ident.startswith(b"\x7fELF"):
        exe = _open_elf(reader, size, ident)
    elif ident.startswith(b"MZ"):
        exe = _open_pe(reader, size)
    elif ident[:4] in (
        b"\xfe\xed\xfa\xce",
        b"\xfe\xed\xfa\xcf",
        b"\xce\xfa\xed\xfe",
        b"\xcf\xfa\xed\xfe",
    ):
        exe = _open_macho(reader, size, ident)
    else:
        raise _NotGoBinary("unrecognized executable format")

    data = exe.read_data(exe.data_start, _SEARCH_WINDOW)
    position = 0
    while True:
        found = data.find(BUILDINFO_MAGIC, position)
        if found < 0 or len(data) - found < _BUILDINFO_HEADER_SIZE:
            raise _NotGoBinary("no Go build info")
        if found % _BUILDINFO_ALIGN == 0:
            break
        position = found + 1
    header = data[found : found + _BUILDINFO_HEADER_SIZE]
    pointer_size, flags = header[14], header[15]
    if flags & 2:
        go_version, rest = _decode_varint_string(data, found + _BUILDINFO_HEADER_SIZE, exe)
        modinfo, _ = _decode_varint_string(data, rest, exe)
    else:
        if pointer_size not in (4, 8):
            raise AnalyzerError(f"Go build info has pointer size {pointer_size}")
        order = ">" if flags & 1 else "<"
        pointer = struct.Struct(order + ("I" if pointer_size == 4 else "Q"))
        version_address = pointer.unpack_from(header, 16)[0]
        modinfo_address = pointer.unpack_from(header, 16 + pointer_size)[0]
        go_version = _read_go_string(exe, pointer, version_address)
        modinfo = _read_go_string(exe, pointer, modinfo_address)
    if not go_version:
        raise _NotGoBinary("empty Go version in build info")
    # cmd/go/internal/modload infoStart/infoEnd: 16-byte sentinels around the module text.
    modinfo = modinfo[16:-16] if len(modinfo) >= 33 and modinfo[-17] == ord("\n") else b""
    return _parse_modinfo(
        go_version.decode("utf-8", errors="replace"), modinfo.decode("utf-8", errors="replace")
    )


def _read_at(reader: BinaryIO, offset: int, length: int) -> bytes:
    reader.seek(offset)
    return reader.read(length)


def _decode_varint_string(window: bytes, position: int, exe: _Executable) -> tuple[bytes, int]:
    """A uvarint length and that many bytes; may run past the 64 KiB window, so read from exe."""
    length = 0
    shift = 0
    while True:
        if position >= len(window) or shift > 63:
            raise AnalyzerError("Go build info string length is truncated")
        byte = window[position]
        position += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if length > _MAX_MODINFO:
        raise AnalyzerError(f"Go build info string of {length} bytes is over the cap")
    if position + length <= len(window):
        return window[position : position + length], position + length
    raise AnalyzerError("Go build info string runs past the search window")


def _read_go_string(exe: _Executable, pointer: struct.Struct, address: int) -> bytes:
    """A Go string header (data pointer, length) at ``address``, and the bytes it points at."""
    try:
        string_header = exe.read_data(address, 2 * pointer.size)
        if len(string_header) < 2 * pointer.size:
            return b""
        data_address = pointer.unpack_from(string_header, 0)[0]
        length = pointer.unpack_from(string_header, pointer.size)[0]
        if length > _MAX_MODINFO:
            raise AnalyzerError(f"Go build info string of {length} bytes is over the cap")
        data = exe.read_data(data_address, length)
    except _NotGoBinary:
        return b""  # Go's readString returns "" on any read failure
    return data if len(data) == length else b""


# --- executable formats ---------------------------------------------------------------------


def _open_elf(reader: BinaryIO, size: int, ident: bytes) -> _Executable:
    """ELF: program headers map addresses; ``.go.buildinfo`` or the first RW segment is data."""
    elf_class, encoding = ident[4], ident[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        raise _NotGoBinary("bad ELF class or data encoding")
    order = "<" if encoding == 1 else ">"
    is64 = elf_class == 2
    header = _read_at(reader, 0, 64 if is64 else 52)
    if len(header) < (64 if is64 else 52):
        raise _NotGoBinary("truncated ELF header")
    if is64:
        ph_offset, sh_offset = struct.unpack_from(order + "QQ", header, 0x20)
        ph_size, ph_count, sh_size, sh_count, sh_names = struct.unpack_from(
            order + "HHHHH", header, 0x36
        )
        ph_format, sh_format = order + "IIQQQQ", order + "IIQQQQ"
    else:
        ph_offset, sh_offset = struct.unpack_from(order + "II", header, 0x1C)
        ph_size, ph_count, sh_size, sh_count, sh_names = struct.unpack_from(
            order + "HHHHH", header, 0x2A
        )
        ph_format, sh_format = order + "IIIIIII", order + "IIIIII"

    program_headers = _read_table(reader, size, ph_offset, ph_size, ph_count, ph_format)
    regions = []
    data_start = 0
    for fields in program_headers:
        if is64:
            p_type, p_flags, p_offset, p_vaddr, _, p_filesz = fields
        else:
            p_type, p_offset, p_vaddr, _, p_filesz, _, p_flags = fields
        if p_filesz:
            regions.append(_Region(p_vaddr, p_filesz, p_offset))
        # PT_LOAD with PF_W but not PF_X.
        if not data_start and p_type == 1 and p_flags & 3 == 2:
            data_start = p_vaddr

    section_headers = _read_table(reader, size, sh_offset, sh_size, sh_count, sh_format)
    if 0 < sh_names < len(section_headers):
        _, _, _, _, names_offset, names_size = section_headers[sh_names]
        if names_offset + min(names_size, _MAX_HEADER_TABLE) <= size:
            names = _read_at(reader, names_offset, min(names_size, _MAX_HEADER_TABLE))
            for name_index, _, _, address, _, _ in section_headers:
                if names[name_index : name_index + 14] == b".go.buildinfo\x00":
                    data_start = address
                    break
    return _Executable(reader, size, regions, data_start)


def _read_table(
    reader: BinaryIO, size: int, offset: int, entry_size: int, count: int, fmt: str
) -> list[tuple[int, ...]]:
    if count == 0 or offset == 0:
        return []
    entry = struct.Struct(fmt)
    if entry_size < entry.size:
        raise _NotGoBinary(f"header table entry of {entry_size} bytes is too small")
    total = entry_size * count
    if total > _MAX_HEADER_TABLE or offset + total > size:
        raise _NotGoBinary("header table extends past the end of the file")
    table = _read_at(reader, offset, total)
    return [entry.unpack_from(table, index * entry_size) for index in range(count)]


def _open_pe(reader: BinaryIO, size: int) -> _Executable:
    """PE: sections map RVAs (plus ImageBase); data is the first initialized RW section."""
    dos = _read_at(reader, 0, 64)
    if len(dos) < 64:
        raise _NotGoBinary("truncated DOS header")
    (pe_offset,) = struct.unpack_from("<I", dos, 0x3C)
    coff = _read_at(reader, pe_offset, 24) if pe_offset + 24 <= size else b""
    if len(coff) < 24 or coff[:4] != b"PE\x00\x00":
        raise _NotGoBinary("no PE signature")
    section_count, optional_size = struct.unpack_from("<H12xH", coff, 6)
    optional = _read_at(reader, pe_offset + 24, optional_size)
    if len(optional) < 32:
        raise _NotGoBinary("truncated PE optional header")
    (magic,) = struct.unpack_from("<H", optional, 0)
    if magic == 0x10B:
        image_base = struct.unpack_from("<I", optional, 28)[0]
    elif magic == 0x20B:
        image_base = struct.unpack_from("<Q", optional, 24)[0]
    else:
        raise _NotGoBinary(f"unknown PE optional header magic {magic:#x}")
    sections = _read_table(
        reader, size, pe_offset + 24 + optional_size, 40, section_count, "<8xIIII12xI"
    )
    regions = []
    data_start = 0
    for _, virtual_address, raw_size, raw_offset, characteristics in sections:
        if raw_size:
            regions.append(_Region(image_base + virtual_address, raw_size, raw_offset))
        # IMAGE_SCN_CNT_INITIALIZED_DATA | MEM_READ | MEM_WRITE, ignoring ALIGN_32BYTES.
        if (
            not data_start
            and virtual_address
            and raw_size
            and characteristics & ~0x600000 == 0x40 | 0x40000000 | 0x80000000
        ):
            data_start = image_base + virtual_address
    return _Executable(reader, size, regions, data_start)


def _open_macho(reader: BinaryIO, size: int, ident: bytes) -> _Executable:
    """Mach-O: segments map addresses; ``__go_buildinfo`` or the first RW segment is data."""
    order = ">" if ident[0] == 0xFE else "<"
    is64 = ident[:4] in (b"\xfe\xed\xfa\xcf", b"\xcf\xfa\xed\xfe")
    header_size = 32 if is64 else 28
    # mach_header: magic, cputype, cpusubtype, filetype, ncmds, sizeofcmds, flags[, reserved]
    counts = _read_at(reader, 16, 8)
    if len(counts) < 8:
        raise _NotGoBinary("truncated Mach-O header")
    command_count, commands_size = struct.unpack_from(order + "II", counts)
    if commands_size > _MAX_HEADER_TABLE or header_size + commands_size > size:
        raise _NotGoBinary("Mach-O load commands extend past the end of the file")
    commands = _read_at(reader, header_size, commands_size)
    regions = []
    segment_data_start = 0
    section_data_start = 0
    position = 0
    for _ in range(command_count):
        if position + 8 > len(commands):
            raise _NotGoBinary("truncated Mach-O load command")
        command, command_size = struct.unpack_from(order + "II", commands, position)
        if command_size < 8 or position + command_size > len(commands):
            raise _NotGoBinary("bad Mach-O load command size")
        body = commands[position : position + command_size]
        if command in (0x1, 0x19):
            segment = _macho_segment(body, order, command == 0x19)
            name, address, file_offset, file_size, max_prot, init_prot, sections = segment
            if name != b"__PAGEZERO" and file_size:
                regions.append(_Region(address, file_size, file_offset))
            if not segment_data_start and address and file_size and max_prot == init_prot == 3:
                segment_data_start = address
            for section_name, section_address in sections:
                if section_name == b"__go_buildinfo" and not section_data_start:
                    section_data_start = section_address
        position += command_size
    return _Executable(reader, size, regions, section_data_start or segment_data_start)


def _macho_segment(
    body: bytes, order: str, is64: bool
) -> tuple[bytes, int, int, int, int, int, list[tuple[bytes, int]]]:
    if is64:
        layout, section_layout, section_size = order + "8x16sQQQQiiI", order + "16s16sQ", 80
    else:
        layout, section_layout, section_size = order + "8x16sIIIIiiI", order + "16s16sI", 68
    fixed = struct.calcsize(layout) + 4  # + flags
    if len(body) < fixed:
        raise _NotGoBinary("truncated Mach-O segment command")
    name, address, _, file_offset, file_size, max_prot, init_prot, section_count = (
        struct.unpack_from(layout, body, 0)
    )
    sections = []
    for index in range(section_count):
        start = fixed + index * section_size
        if start + section_size > len(body):
            raise _NotGoBinary("truncated Mach-O section table")
        section_name, _, section_address = struct.unpack_from(section_layout, body, start)
        sections.append((section_name.rstrip(b"\x00"), section_address))
    return name.rstrip(b"\x00"), address, file_offset, file_size, max_prot, init_prot, sections


# --- module text ----------------------------------------------------------------------------


def _parse_modinfo(go_version: str, text: str) -> BuildInfo:
    """runtime/debug.ParseBuildInfo's line format, keeping what a scanner needs."""
    main: _Module | None = None
    deps: list[_Module] = []
    settings: list[tuple[str, str]] = []
    skipped: list[tuple[int, str]] = []  # one bad line costs that module only
    last: str = ""  # which module a "=>" line replaces: "mod" or "dep"
    for line_number, line in enumerate(text.splitlines(), start=1):
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "path":
            continue
        if kind in ("mod", "dep", "=>"):
            if len(fields) < 2 and not (kind == "=>" and len(fields) == 1 and fields[0]):
                skipped.append((line_number, f"malformed {kind!r} line"))
                last = ""  # a "=>" after it must not replace the module before it
                continue
            module = _Module(path=fields[0], version=fields[1] if len(fields) > 1 else "")
            if kind == "mod":
                main, last = module, "mod"
            elif kind == "dep":
                deps.append(module)
                last = "dep"
            elif last == "dep":
                deps[-1] = module
            elif last == "mod":
                main = module
            else:
                skipped.append((line_number, "'=>' without a module"))
        elif kind == "build":
            key, _, value = rest.partition("=")
            settings.append((_unquote(key), _unquote(value)))
    return BuildInfo(go_version=go_version, main=main, deps=tuple(deps), settings=tuple(settings),
                     skipped=tuple(skipped))


def _unquote(text: str) -> str:
    """Build settings are written with Go's strconv.Quote when they need quoting."""
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            value = json.loads(text)
        except ValueError:
            return text[1:-1]
        return value if isinstance(value, str) else text
    return text


# --- packages -------------------------------------------------------------------------------

_DEFAULT_VERSION_PREFIXES = frozenset({"main", "common", "version", "cmd"})
# golang.org/x/mod/semver: vMAJOR[.MINOR[.PATCH[-PRERELEASE][+BUILD]]].
_NUMBER = r"(?:0|[1-9][0-9]*)"
_IDENT = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"v{_NUMBER}(?:\.{_NUMBER}(?:\.{_NUMBER}"
    rf"(?:-(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:{_NUMBER}|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?"
    rf"(?:\+{_IDENT}(?:\.{_IDENT})*)?)?)?"
)


def _to_packages(info: BuildInfo, path: str) -> tuple[Package, ...]:
    packages = []
    if info.main is not None and info.main.path:
        version = "" if info.main.version == "(devel)" else info.main.version
        stamped = ldflags_version(info.main.path, info.settings)
        if not version or (version.startswith("v0.0.0") and stamped):
            version = stamped
        packages.append(_package(info.main.path, version, path))
    stdlib = info.go_version.removeprefix("go").split(" ", 1)[0]
    packages.append(_package("stdlib", f"v{stdlib}", path))
    for dep in info.deps:
        if not dep.path:
            continue  # old toolchains list the main module as an empty dep
        packages.append(_package(dep.path, "" if dep.version == "(devel)" else dep.version, path))
    return tuple(packages)


def _package(module: str, version: str, path: str) -> Package:
    namespace, _, name = module.rpartition("/")
    purl = make_purl(PackageType.GOLANG, name, version, namespace=namespace)
    return Package(type=PackageType.GOLANG, name=module, version=version, purl=purl, path=path)


def ldflags_version(module: str, settings: tuple[tuple[str, str], ...]) -> str:
    """The version stamped with ``-ldflags "-X <pkg>.version=<semver>"``, as trivy picks it."""
    flags = next((value for key, value in settings if key == "-ldflags"), None)
    if flags is None:
        return ""
    try:
        words = shlex.split(flags)
    except ValueError:
        return ""
    assignments: dict[str, str] = {}
    index = 0
    while index < len(words):
        word = words[index]
        value = None
        if word == "-X" and index + 1 < len(words):
            value = words[index + 1]
            index += 1
        elif word.startswith("-X="):
            value = word[3:]
        elif word.startswith("-X") and len(word) > 2:
            value = word[2:]
        index += 1
        if value is None:
            continue
        for item in value.split(","):
            key, separator, setting = item.partition("=")
            if separator:
                assignments[key.lstrip("'")] = setting.rstrip("'")
    found: tuple[list[str], list[str], list[str]] = ([], [], [])
    for key, value in assignments.items():
        lowered = key.lower()
        if not (lowered.endswith(".version") or lowered.endswith(".ver")):
            continue
        if not (_SEMVER.fullmatch(value) or _SEMVER.fullmatch("v" + value)):
            continue
        prefix = key.rsplit("/", 1)[-1].split(".", 1)[0].lower()
        if key.startswith(module + "/cmd/"):
            found[0].append(value)
        elif prefix in _DEFAULT_VERSION_PREFIXES:
            found[1].append(value)
        else:
            found[2].append(value)
    for versions in found:
        if versions:
            return versions[0] if len(versions) == 1 else ""
    return ""
