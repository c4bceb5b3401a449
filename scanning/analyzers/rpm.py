"""Installed RPM packages from the rpm database: sqlite, BerkeleyDB (``Packages``) or NDB.

The three backends hold the same thing, one RPM header blob per installed package; the blob
parser is ``rpmdb_header``. Output follows trivy's rpm analyzer (``pkg/fanal/analyzer/pkg/rpm``):
the version is ``[epoch:]version-release`` with the epoch only when non-zero, the source package
name and version come from the SOURCERPM file name (``name-version-release.src.rpm``), and the
source version carries the *binary* package's epoch because the file name has none.
``gpg-pubkey`` entries are imported signing keys, not software, and are skipped.

A header blob that cannot be read or parsed (a broken NDB slot or blob, a broken BerkeleyDB
overflow chain, a sqlite row without a blob, a malformed header) costs that package only: it is
skipped with a warning naming the record. A BerkeleyDB file cut short is read as far as its
pages go. A file that is no rpm database at all is an ``AnalyzerError``; a walk that breaks
after some records keeps them and says the rest was not read. ``MAX_DB_RECORDS`` caps the
records read (``scanning.analyzers.records``).
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
from scanning.analyzers.records import EntryLog, SkippedEntry
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
    version = 2
    max_file_size = MAX_RPMDB_SIZE

    def required(self, path: str, mode: int) -> bool:
        return path in _REQUIRED

    def analyze(self, file: AnalyzerInput) -> AnalyzerOutput:
        base = file.path.rsplit("/", 1)[-1]
        blobs: Iterator[bytes | SkippedEntry]
        if base == _SQLITE:
            blobs = _iter_sqlite_blobs(file.reader)
        elif base == _NDB:
            blobs = iter_ndb_blobs(file.reader, file.size)
        else:
            blobs = iter_bdb_values(file.reader, file.size)
        entries = EntryLog(self.name, file.path)
        packages = []
        # One blob at a time: a large rpmdb is never held in memory twice. A blob that cannot
        # be read or parsed costs that package only.
        try:
            for blob in blobs:
                if isinstance(blob, SkippedEntry) and blob.where:
                    entries.note(blob.where, blob.reason)
                    continue
                if not entries.admit():
                    break
                where = f"record {entries.records}"
                if isinstance(blob, SkippedEntry):
                    entries.skip(where, blob.reason)
                    continue
                try:
                    header = parse_header(blob)
                except HeaderError as exc:
                    entries.skip(where, str(exc))
                    continue
                if header.name != "gpg-pubkey":
                    packages.append(package_from_header(header, file.path))
        except (AnalyzerError, BdbError, NdbError) as exc:
            if not entries.records:
                raise AnalyzerError(f"{file.path}: {exc}") from exc
            # What was read stands; the rest of the walk is lost and said to be.
            entries.note(f"after record {entries.records}",
                         f"{exc}; the rest of the database was not read")
        return AnalyzerOutput(packages=tuple(packages), warnings=entries.warnings())


def _iter_sqlite_blobs(reader: BinaryIO) -> Iterator[bytes | SkippedEntry]:
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
            for hnum, blob in connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"):
                if isinstance(blob, bytes):
                    yield blob
                else:
                    yield SkippedEntry(reason=f"Packages row hnum {hnum!r} holds no blob")
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
