"""Micro-benchmark: compare 100k version pairs per scheme, ours vs univers.

Run: .venv/bin/python bench/bench_versions.py
Pairs come from the shared reference tables (../shared/testdata/version-vectors), cycled up
to 100k. "cold" clears the parse caches first (every distinct string parsed once); "warm"
is the steady state of a worker matching many images.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Callable
from pathlib import Path

from univers import versions as univers_versions

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.versions import (
    VersionScheme,
    _apk,
    _dpkg,
    _maven,
    _misc,
    _rpm,
    _semver,
    compare,
)

VECTORS = Path(__file__).resolve().parents[1] / ".." / "shared" / "testdata" / "version-vectors"
PAIRS = 100_000

TABLES = [
    (VersionScheme.DPKG, "deb.tsv", univers_versions.DebianVersion),
    (VersionScheme.RPM, "rpm_evr.tsv", univers_versions.RpmVersion),
    (VersionScheme.APK, "apk.tsv", univers_versions.AlpineLinuxVersion),
    (VersionScheme.PEP440, "pep440.tsv", univers_versions.PypiVersion),
    (VersionScheme.SEMVER, "npm.tsv", univers_versions.SemverVersion),
    (VersionScheme.MAVEN, "maven.tsv", univers_versions.MavenVersion),
]


def _pairs(name: str) -> list[tuple[str, str]]:
    rows = [
        line.split("\t")
        for line in (VECTORS / name).read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    return list(itertools.islice(itertools.cycle((r[0], r[2]) for r in rows), PAIRS))


def _clear_caches() -> None:
    for function in (
        _dpkg.dpkg_key,
        _rpm.rpm_key,
        _rpm.rpmvercmp_key,
        _apk.apk_tokens,
        _misc.pep440_key,
        _semver.semver_key,
        _maven.maven_parse,
    ):
        function.cache_clear()


def _time(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    print(f"{'scheme':8} {'cold ms':>9} {'warm ms':>9} {'univers ms':>11}  (100k pairs)")
    for scheme, table, univers_class in TABLES:
        pairs = _pairs(table)

        def ours(pairs: list[tuple[str, str]] = pairs, scheme: VersionScheme = scheme) -> None:
            for a, b in pairs:
                compare(scheme, a, b)

        def theirs(pairs: list[tuple[str, str]] = pairs, cls: type = univers_class) -> None:
            for a, b in pairs:
                try:
                    x, y = cls(a), cls(b)
                    _ = (x > y) - (x < y)
                except Exception:  # univers refuses some reference rows; skip them
                    pass

        _clear_caches()
        cold = _time(ours)
        warm = _time(ours)
        slow = _time(theirs)
        print(f"{scheme:8} {cold * 1000:9.0f} {warm * 1000:9.0f} {slow * 1000:11.0f}")


if __name__ == "__main__":
    main()
