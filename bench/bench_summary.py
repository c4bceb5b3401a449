"""Memory and CPU of the dashboard summary (``scanning.service.summary.summarize``), which every
rescan's last step and the dashboard's timer run over every image row.

    .venv/bin/python bench/bench_summary.py [--images 30000]

Feeds ``summarize`` N synthetic images of 70 findings each (ids drawn from 3,000 CVEs with a
GHSA alias, packages from 600 names, fresh strings per image as decoding a row's finding keys
gives) and reports the process's peak RSS growth, the CPU seconds and a digest of the term
index shards (equal across code versions when ``PYTHONHASHSEED`` is fixed: the shards keep the
order terms were first met). Run in a fresh process: peak RSS is the process's high-water mark.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import resource
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scanning.model import AssessmentStatus, FindingCounts, Severity
from scanning.service.summary import summarize, term_shards_to_bytes
from scanning.store import ImageRecord

FINDINGS = 70


@dataclass(frozen=True, slots=True)
class Key:
    """The fields of a decoded finding key that the summary reads."""

    ids: tuple[str, ...]
    severity_rank: int
    fix_status: str
    disabled: bool = False
    packages: tuple[str, ...] = ()


def images(count: int) -> Iterator[tuple[ImageRecord, list[Key]]]:
    for number in range(count):
        rng = random.Random(number % 500)
        image = ImageRecord(
            registry=f"bench{number // 500 % 100:03d}.azurecr.io",
            repository=f"team{number % 100}/app",
            digest="sha256:" + hashlib.sha256(str(number).encode()).hexdigest(),
            tags=(f"build-{number}",), platforms=("linux/amd64",),
            status=AssessmentStatus.UNHEALTHY,
            counts=FindingCounts(active={Severity.HIGH: 30, Severity.MEDIUM: 40}))
        keys = []
        for _ in range(FINDINGS):
            cve, package = rng.randrange(3000), rng.randrange(600)
            keys.append(Key(ids=(f"CVE-2024-{cve}", f"GHSA-{cve:04d}"),
                            severity_rank=rng.randrange(5), fix_status="fixed",
                            packages=(f"pkg{package}", f"pkg{package}-src")))
        yield image, keys


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=30_000)
    args = parser.parse_args()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    summary = summarize(images(args.images), datetime(2026, 12, 3, tzinfo=UTC), (), None)
    cpu = time.process_time() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    digest = hashlib.sha256(b"".join(term_shards_to_bytes(summary.terms))).hexdigest()[:16]
    print(f"{args.images} images x {FINDINGS} findings: peak RSS +{grown:.0f} MB, {cpu:.1f} CPU s, "
          f"{len(summary.terms.postings)} terms, term shards sha256 {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
