"""The matcher's version: which code decided a stored verdict.

The weekly rescan proves an image unaffected by an index change from its row alone
(``RescanRun.unaffected``), and re-matches the others with the lookups and signatures stored
with its findings. Both hold only for the code that wrote them: a release that changes how
versions compare, which lookups a package makes, how a severity or a remediation is chosen or
how a verdict is decided changes findings while no advisory changes. So every assessment that
matched an inventory records ``matcher_version()`` on the image row, and a row recorded by
another one is re-matched in full at the next rescan, whatever the index did.

``matcher_version()`` is a fingerprint of the code of the source files that decide findings
from an inventory and an index, of the Python version that runs it, and of the installed
versions of the libraries they use. There is no constant to bump by hand: any change to that
code changes it, at the cost of one full re-match of each pulled image (its stored inventory
is matched again; nothing is pulled or billed). A file's code is its syntax tree
(``ast.dump``, without positions): comments, blank lines and line breaks do not count,
docstrings and every name and literal do. A file that does not parse counts by its bytes.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import sys
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
# The syntax trees' form (and the standard library's behaviour) may change with it.
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def source_files(root: Path, sources: Iterable[str] = SOURCES) -> list[Path]:
    """The files ``sources`` names under ``root``, sorted (a missing one is kept: its
    absence is part of the fingerprint)."""
    files: list[Path] = []
    for source in sources:
        path = root / source
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return sorted(files)


def fingerprint(root: Path, sources: Iterable[str] = SOURCES,
                libraries: Iterable[str] = LIBRARIES, python: str = PYTHON) -> str:
    """16 hex digits of BLAKE2b over each source file's path (relative to ``root``) and code
    (``source_code``), then the Python version and each library's installed version."""
    digest = hashlib.blake2b(digest_size=8, person=b"acr-scan-matcher")
    for path in source_files(root, sources):
        data = source_code(path)
        name = path.relative_to(root).as_posix().encode()
        digest.update(len(name).to_bytes(4, "big") + name + len(data).to_bytes(8, "big") + data)
    digest.update(f"python=={python}\n".encode())
    for library in libraries:
        try:
            version = metadata.version(library)
        except metadata.PackageNotFoundError:
            version = "\0missing"
        digest.update(f"{library}=={version}\n".encode())
    return digest.hexdigest()


def source_code(path: Path) -> bytes:
    """What of a source file counts: its syntax tree without positions (so not its comments
    or layout), its bytes when it does not parse, a marker when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return b"\0missing"
    try:
        return b"ast:" + ast.dump(ast.parse(data, str(path))).encode()
    except (SyntaxError, ValueError):
        return b"bytes:" + data


@functools.cache
def matcher_version() -> str:
    """This code's fingerprint (computed once a process, on first use: ~100 ms, most of it
    parsing the sources)."""
    return fingerprint(Path(__file__).resolve().parent)
