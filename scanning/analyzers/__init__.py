"""Analyzers, one module per on-disk format. ``ANALYZERS`` is the one explicit list."""

from __future__ import annotations

import hashlib

from scanning.analyzers.apk import ApkAnalyzer
from scanning.analyzers.base import Analyzer, AnalyzerInput, AnalyzerOutput
from scanning.analyzers.dotnet import DotnetDepsAnalyzer
from scanning.analyzers.dpkg import DpkgAnalyzer
from scanning.analyzers.gobinary import GoBinaryAnalyzer
from scanning.analyzers.java import JavaArchiveAnalyzer
from scanning.analyzers.npm import NpmAnalyzer
from scanning.analyzers.os_release import OSReleaseAnalyzer
from scanning.analyzers.python import PythonAnalyzer
from scanning.analyzers.rpm import RpmAnalyzer
from scanning.analyzers.rpm_manifest import RpmManifestAnalyzer

# Every analyzer, once. Adding one: a module, one line here, tests with real fixture files.
ANALYZERS: tuple[Analyzer, ...] = (
    OSReleaseAnalyzer(),
    DpkgAnalyzer(),
    ApkAnalyzer(),
    PythonAnalyzer(),
    NpmAnalyzer(),
    # --- analyzers added by other areas (rpm, Go binaries, Java): one line each below ---
    RpmAnalyzer(),
    GoBinaryAnalyzer(),
    JavaArchiveAnalyzer(),
    DotnetDepsAnalyzer(),
    RpmManifestAnalyzer(),
)


def analyzer_set_version(analyzers: tuple[Analyzer, ...] = ANALYZERS) -> str:
    """A short stable id of the analyzer set: part of every layer-cache key."""
    text = ",".join(f"{a.name}={a.version}" for a in sorted(analyzers, key=lambda a: a.name))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = ["ANALYZERS", "Analyzer", "AnalyzerInput", "AnalyzerOutput", "analyzer_set_version"]
