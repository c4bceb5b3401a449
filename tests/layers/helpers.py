"""Test-local analyzers and tar builders shared by the layer, inventory and analysis tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from dataclasses import dataclass

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType


@dataclass
class ListAnalyzer:
    """Reads ``*/pkgs.txt``: one ``name version`` per line; ``boom`` raises AnalyzerError."""

    name: str = "list"
    version: int = 1
    max_file_size: int = 1024

    def required(self, path: str, mode: int) -> bool:
        return path.rsplit("/", 1)[-1] == "pkgs.txt"

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        packages = []
        for line in file.reader.read().decode().splitlines():
            if line == "boom":
                raise AnalyzerError(f"{file.path}: boom")
            name, version = line.split()
            packages.append(Package(type=PackageType.PYPI, name=name, version=version,
                                    purl=f"pkg:pypi/{name}@{version}", path=file.path))
        return AnalyzerOutput(packages=tuple(packages))


@dataclass
class ExecutableAnalyzer:
    """Asks for every executable and finds nothing in it, as the Go binary analyzer mostly does."""

    name: str = "exe"
    version: int = 1
    max_file_size: int = 1024

    def required(self, path: str, mode: int) -> bool:
        return bool(mode & 0o111)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        return AnalyzerOutput()


def tar_bytes(entries: list[tuple[str, bytes | None, str]]) -> bytes:
    """(name, data, kind) with kind one of file, dir, symlink:TARGET, hardlink:TARGET."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name, data, kind in entries:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind.startswith("symlink:"):
                info.type = tarfile.SYMTYPE
                info.linkname = kind.split(":", 1)[1]
                tar.addfile(info)
            elif kind.startswith("hardlink:"):
                info.type = tarfile.LNKTYPE
                info.linkname = kind.split(":", 1)[1]
                tar.addfile(info)
            else:
                payload = data or b""
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def digest_of(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def pypi(name: str, version: str, path: str, layer: str = "", instruction: str = "") -> Package:
    return Package(type=PackageType.PYPI, name=name, version=version,
                   purl=f"pkg:pypi/{name}@{version}", path=path, layer_digest=layer,
                   layer_instruction=instruction)
