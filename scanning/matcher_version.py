"""The matcher's version: which code decided a stored verdict.

The weekly rescan proves an image unaffected by an index change from its row alone
(``RescanRun.unaffected``), and re-matches the others with the lookups and signatures stored
with its findings. Both hold only for the code that wrote them: a release that changes how
versions compare, which lookups a package makes, how a severity or a remediation is chosen or
how a verdict is decided changes findings while no advisory changes. So every assessment that
matched an inventory records ``matcher_version()`` on the image row, and a row recorded by
another one is re-matched in full at the next rescan, whatever the index did.

``matcher_version()`` is a fingerprint of the source files that decide findings from an
inventory and an index, and of the installed versions of the libraries they use. There is no
constant to bump by hand: any edit of those files changes it (a comment too), at the cost of
one full re-match of each pulled image (its stored inventory is matched again; nothing is
pulled or billed).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

# Relative to the ``scanning`` package; a folder stands for every ``.py`` file under it.
SOURCES = (
    "advisories/ecosystems.py",  # ecosystem names and name normalisation of lookups
    "advisories/index.py",  # the index as matching reads it
    "assessment.py",  # the verdict from the matches
    "inventory.py",  # the stored inventory as matching reads it
    "matching.py",  # lookups, version ranges, findings, signatures
    "model.py",  # packages and findings
    "rules.py",  # disable rules as a verdict applies them
    "service/evaluation.py",  # inventories in, verdict and match keys out
    "severity.py",  # a finding's severity
    "versions",  # version comparison of every ecosystem
)
# Third-party libraries those files compare versions or score vectors with.
LIBRARIES = ("cvss", "packaging", "univers")


def source_files(root: Path, sources: Iterable[str] = SOURCES) -> list[Path]:
    """The files ``sources`` names under ``root``, sorted (a missing one is kept: its
    absence is part of the fingerprint)."""
    files: list[Path] = []
    for source in sources:
        path = root / source
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return sorted(files)


def fingerprint(root: Path, sources: Iterable[str] = SOURCES,
                libraries: Iterable[str] = LIBRARIES) -> str:
    """16 hex digits of BLAKE2b over each source file's path (relative to ``root``) and
    bytes, then each library's installed version."""
    digest = hashlib.blake2b(digest_size=8, person=b"acr-scan-matcher")
    for path in source_files(root, sources):
        try:
            data = path.read_bytes()
        except OSError:
            data = b"\0missing"
        name = path.relative_to(root).as_posix().encode()
        digest.update(len(name).to_bytes(4, "big") + name + len(data).to_bytes(8, "big") + data)
    for library in libraries:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "\0missing"
        digest.update(f"{library}=={version}\n".encode())
    return digest.hexdigest()


@functools.cache
def matcher_version() -> str:
    """This code's fingerprint (computed once a process, on first use: ~50 ms, most of it
    reading the libraries' metadata)."""
    return fingerprint(Path(__file__).resolve().parent)
