"""Analyzers, one module per on-disk format. ``ANALYZERS`` is the one explicit list."""

from __future__ import annotations

import hashlib

from scanning.analyzers.base import Analyzer, AnalyzerInput, AnalyzerOutput

ANALYZERS: tuple[Analyzer, ...] = ()


def analyzer_set_version(analyzers: tuple[Analyzer, ...] = ANALYZERS) -> str:
    """A short stable id of the analyzer set: part of every layer-cache key."""
    text = ",".join(f"{a.name}={a.version}" for a in sorted(analyzers, key=lambda a: a.name))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


__all__ = ["ANALYZERS", "Analyzer", "AnalyzerInput", "AnalyzerOutput", "analyzer_set_version"]
