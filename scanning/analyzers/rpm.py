"""Installed RPM packages from the rpm database: sqlite, BerkeleyDB (``Packages``) or NDB.

The three backends hold the same thing, one RPM header blob per installed package; the blob
parser is ``rpmdb_header``. Output follows trivy's rpm analyzer (``pkg/fanal/analyzer/pkg/rpm``):
the version is ``[epoch:]version-release`` with the epoch only when non-zero, the source package
name and version come from the SOURCERPM file name (``name-version-release.src.rpm``), and the
source version carries the *binary* package's epoch because the file name has none.
``gpg-pubkey`` entries are imported signing keys, not software, and are skipped.
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.purl import make_purl
from scanning.analyzers.rpmdb_bdb import BdbError, iter_bdb_values
from scanning.analyzers.rpmdb_header import HeaderError, RpmHeader, parse_header
from scanning.analyzers.rpmdb_ndb import NdbError, iter_ndb_blobs
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

logger = logging.getLogger(__name__)

_DB_DIRS = ("var/lib/rpm/", "usr/lib/sysimage/rpm/")
_SQLITE = "rpmdb.sqlite"
_BDB = "Packages"
_NDB = "Packages.db"
_REQUIRED = frozenset(d + f for d in _DB_DIRS for f in (_SQLITE, _BDB, _NDB))

# A large distro image has a few thousand packages and an rpmdb of 100-300 MiB.
MAX_RPMDB_SIZE = 512 * 1024 * 1024
# Abort a sqlite query after this many virtual-machine steps (x1000): a real rpmdb needs far
# fewer; a hostile schema (a recursive view named Packages) would otherwise run forever.
_SQLITE_MAX_PROGRESS_CALLS = 1_000_000
_COPY_CHUNK = 1024 * 1024


class RpmAnalyzer:
    name = "rpm"
    version = 1
    max_file_size = MAX_RPMDB_SIZE

    def required(self, path: str, mode: int) -> bool:
        return path in _REQUIRED

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        base = file.path.rsplit("/", 1)[-1]
        blobs: Iterator[bytes]
        if base == _SQLITE:
            blobs = _iter_sqlite_blobs(file.reader)
        elif base == _NDB:
            blobs = iter_ndb_blobs(file.reader, file.size)
        else:
            blobs = iter_bdb_values(file.reader, file.size)
        packages = []
        # One blob at a time: a large rpmdb is never held in memory twice.
        try:
            for index, blob in enumerate(blobs):
                try:
                    header = parse_header(blob)
                except HeaderError as exc:
                    raise AnalyzerError(f"{file.path}: package #{index + 1}: {exc}") from exc
                if header.name != "gpg-pubkey":
                    packages.append(package_from_header(header, file.path))
        except (BdbError, NdbError) as exc:
            raise AnalyzerError(f"{file.path}: {exc}") from exc
        return AnalyzerOutput(packages=tuple(packages))


def _iter_sqlite_blobs(reader: BinaryIO) -> Iterator[bytes]:
    """The ``Packages`` table of an rpm sqlite database, in ``hnum`` (install) order.

    sqlite needs a real file: the reader is copied to a private temp file (bounded by the
    analyzer's ``max_file_size``) and opened read-only and immutable, so sqlite never looks for
    or writes a journal next to it.
    """
    with tempfile.TemporaryDirectory(prefix="acr-scan-rpmdb-") as tmp:
        db_path = Path(tmp) / _SQLITE
        reader.seek(0)
        with db_path.open("wb") as out:
            shutil.copyfileobj(reader, out, _COPY_CHUNK)
        uri = f"{db_path.as_uri()}?mode=ro&immutable=1"
        try:
            connection = sqlite3.connect(uri, uri=True)
        except sqlite3.Error as exc:
            raise AnalyzerError(f"cannot open rpm sqlite database: {exc}") from exc
        try:
            calls = 0

            def progress() -> int:
                nonlocal calls
                calls += 1
                return 1 if calls > _SQLITE_MAX_PROGRESS_CALLS else 0

            connection.set_progress_handler(progress, 1000)
            rows = connection.execute(
                "SELECT type FROM sqlite_master WHERE name = 'Packages'"
            ).fetchall()
            if rows != [("table",)]:
                raise AnalyzerError("rpm sqlite database has no Packages table")
            for (blob,) in connection.execute("SELECT blob FROM Packages ORDER BY hnum"):
                if not isinstance(blob, bytes):
                    raise AnalyzerError("rpm sqlite Packages row holds no blob")
                yield blob
        except sqlite3.Error as exc:
            raise AnalyzerError(f"cannot read rpm sqlite database: {exc}") from exc
        finally:
            connection.close()


def split_source_rpm(file_name: str) -> tuple[str, str, str] | None:
    """``name-version-release.arch.rpm`` -> (name, version, release); None when malformed.

    As yum's ``rpmUtils.miscutils.splitFilename`` and trivy's ``splitFileName``.
    """
    stem = file_name.removesuffix(".rpm")
    arch_dot = stem.rfind(".")
    if arch_dot < 0:
        return None
    release_dash = stem.rfind("-", 0, arch_dot)
    if release_dash < 0:
        return None
    version_dash = stem.rfind("-", 0, release_dash)
    if version_dash < 0:
        return None
    return (
        stem[:version_dash],
        stem[version_dash + 1 : release_dash],
        stem[release_dash + 1 : arch_dot],
    )


def _evr(epoch: int, version: str, release: str) -> str:
    text = f"{version}-{release}"
    return f"{epoch}:{text}" if epoch else text


def package_from_header(header: RpmHeader, path: str) -> Package:
    """The inventory package of one rpm header (also used for the distroless rpm manifest)."""
    epoch = header.epoch or 0
    source_name = source_version = ""
    if header.source_rpm:
        parts = split_source_rpm(header.source_rpm)
        if parts is None:
            logger.debug("unparsable SOURCERPM %r of %s", header.source_rpm, header.name)
        else:
            source_name = parts[0]
            source_version = _evr(epoch, parts[1], parts[2])
    # The purl namespace is the distro (fedora, redhat, ...), which one layer's rpmdb does not
    # know; purl.qualify_purl adds it once os-release is known.
    purl = make_purl(
        PackageType.RPM,
        header.name,
        f"{header.version}-{header.release}",
        qualifiers={"arch": header.arch, "epoch": str(epoch) if epoch else ""},
    )
    return Package(
        type=PackageType.RPM,
        name=header.name,
        version=_evr(epoch, header.version, header.release),
        purl=purl,
        path=path,
        source_name=source_name,
        source_version=source_version,
        arch=header.arch,
        licenses=(header.license,) if header.license else (),
    )
