"""Installed RPM packages of distroless CBL-Mariner / Azure Linux images.

Distroless images have no rpm database; their build writes ``var/lib/rpmmanifest/
container-manifest-2`` instead: one line per package, ten tab-separated fields in the order
the image build's ``rpm -qa --qf`` prints them (Trivy ``pkg/fanal/analyzer/pkg/rpm/rpmqa.go``,
Syft ``syft/pkg/cataloger/redhat/parse_rpm_manifest.go``)::

    NAME  VERSION-RELEASE  INSTALLTIME  BUILDTIME  VENDOR  EPOCH  SIZE  ARCH  EPOCHNUM  SOURCERPM

``EPOCH`` is ``(none)`` when unset and ``EPOCHNUM`` is the same as a number (0 when unset);
the epoch is read from ``EPOCHNUM``. Packages are written as the rpm database analyzer writes
them (``rpm.package_from_header``), so matching treats both alike. A line with another number
of fields or a ``VERSION-RELEASE`` without a ``-`` is an ``AnalyzerError`` naming the file and
the line number (Trivy fails the whole file the same way).
"""

from __future__ import annotations

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.rpm import package_from_header
from scanning.analyzers.rpmdb_header import RpmHeader
from scanning.analyzers.textfile import decode_lenient, is_regular_file, read_capped
from scanning.errors import AnalyzerError

MANIFEST_PATH = "var/lib/rpmmanifest/container-manifest-2"
_FIELDS = 10


class RpmManifestAnalyzer:
    name = "rpm-manifest"
    version = 1
    # ~100 bytes per package; a distroless image has tens to a few hundred packages.
    max_file_size = 16 * 1024 * 1024

    def required(self, path: str, mode: int) -> bool:
        return path == MANIFEST_PATH and is_regular_file(mode)

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        text = decode_lenient(read_capped(file, self.max_file_size, self.name))
        packages = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            where = f"{self.name}: {file.path}: line {number}"
            if len(fields) != _FIELDS:
                raise AnalyzerError(f"{where}: {len(fields)} tab-separated fields, expected "
                                    f"{_FIELDS}")
            name, version_release, _, _, vendor, _, _, arch, epoch_number, source_rpm = fields
            version, dash, release = version_release.rpartition("-")
            if not dash or not version or not release or not name:
                raise AnalyzerError(f"{where}: {version_release!r} is not VERSION-RELEASE")
            if not epoch_number.isdigit():
                raise AnalyzerError(f"{where}: epoch {epoch_number!r} is not a number")
            header = RpmHeader(
                name=name,
                version=version,
                release=release,
                epoch=int(epoch_number),
                arch=arch,
                source_rpm=source_rpm,
                license="",
                vendor=vendor,
                modularity_label="",
            )
            packages.append(package_from_header(header, file.path))
        return AnalyzerOutput(packages=tuple(packages))
