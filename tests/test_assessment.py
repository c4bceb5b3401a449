"""The verdict (``scanning.assessment``): its rules, and one answer for the CLI and the app.

The table at the end runs the same images through the CLI's ``scan_image`` and through the
app's ``service.evaluation.evaluate`` (what the scan activity and the weekly rescan call) and
asserts both give the same status, reason and counts. The images are written by the test
(``scanning.ocibuild``); the advisories are the project's demo records (invented, see
``scanning/advisories/demo_records/README.md``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scanning.advisories.demo import build_demo_index
from scanning.advisories.index import AdvisoryIndex
from scanning.analysis import analyze_image
from scanning.assessment import (
    NO_PACKAGES_REASON,
    ImageRef,
    assess_inventories,
    platform_analysis,
    reassess,
    ruled_status,
    worst,
)
from scanning.commands.scan import scan_image
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.matching import MatchResult
from scanning.model import (
    AssessmentStatus,
    Package,
    PackageType,
    Platform,
    PlatformFindings,
    Severity,
)
from scanning.ocibuild import build_oci_layout
from scanning.rules import DisableRule, RuleCriteria
from scanning.service.evaluation import evaluate
from scanning.service.payloads import ScanRequest
from tests.store.factories import make_finding

NOW = datetime(2026, 12, 1, tzinfo=UTC)
IMAGE = ImageRef(registry="r.io", repository="team/app", digest="sha256:" + "a" * 64)
AMD64 = Platform.parse("linux/amd64")


def inventory(status: InventoryStatus = InventoryStatus.COMPLETE, *, packages: int = 1,
              errors: tuple[str, ...] = ()) -> ImageInventory:
    return ImageInventory(
        reference="r.io/team/app", image_digest=IMAGE.digest, manifest_digest=IMAGE.digest,
        config_digest="sha256:" + "c" * 64, platform=AMD64, analyzer_set_version="v",
        status=status, errors=errors,
        packages=tuple(Package(type=PackageType.PYPI, name=f"p{n}", version="1.0",
                               purl=f"pkg:pypi/p{n}@1.0", path="x") for n in range(packages)))


HEALTHY = MatchResult(status=AssessmentStatus.HEALTHY, findings=())
UNHEALTHY = MatchResult(status=AssessmentStatus.UNHEALTHY, findings=(make_finding("CVE-1"),))
GAP = MatchResult(status=AssessmentStatus.UNSUPPORTED, findings=(),
                  reason="the advisory index has no records for PyPI")


@pytest.mark.parametrize(("inventory_", "match", "expected"), [
    (inventory(), HEALTHY, (AssessmentStatus.HEALTHY, "")),
    (inventory(), UNHEALTHY, (AssessmentStatus.UNHEALTHY, "")),
    (inventory(), GAP, (AssessmentStatus.UNSUPPORTED,
                        "the advisory index has no records for PyPI")),
    (inventory(packages=0), HEALTHY, (AssessmentStatus.UNSUPPORTED, NO_PACKAGES_REASON)),
    (inventory(InventoryStatus.PARTIAL, errors=("npm failed",)), HEALTHY,
     (AssessmentStatus.PARTIAL, "some files could not be analyzed: npm failed")),
    (inventory(InventoryStatus.PARTIAL, errors=("npm failed",)), UNHEALTHY,
     (AssessmentStatus.UNHEALTHY, "some files could not be analyzed: npm failed")),
    (inventory(InventoryStatus.PARTIAL, packages=0, errors=("npm failed",)), HEALTHY,
     (AssessmentStatus.PARTIAL, "no packages read: no OS package database and no language "
      "package manifests; some files could not be analyzed: npm failed")),
    (dataclasses.replace(inventory(InventoryStatus.PARTIAL),
                         warnings=("lib/apk/db/installed: record 3 skipped",)), HEALTHY,
     (AssessmentStatus.PARTIAL, "some files were read only in part (1 warning): "
      "lib/apk/db/installed: record 3 skipped")),
    (inventory(InventoryStatus.FAILED, errors=("layer 1/1 truncated",)), None,
     (AssessmentStatus.FAILED, "layer 1/1 truncated")),
])
def test_platform_analysis(inventory_: ImageInventory, match: MatchResult | None,
                           expected: tuple[AssessmentStatus, str]) -> None:
    assert platform_analysis(inventory_, match) == expected


@pytest.mark.parametrize(("analysis", "active", "expected"), [
    (AssessmentStatus.HEALTHY, True, AssessmentStatus.UNHEALTHY),
    (AssessmentStatus.UNHEALTHY, False, AssessmentStatus.HEALTHY),
    (AssessmentStatus.PARTIAL, False, AssessmentStatus.PARTIAL),
    (AssessmentStatus.PARTIAL, True, AssessmentStatus.UNHEALTHY),
    (AssessmentStatus.FAILED, True, AssessmentStatus.FAILED),
    (AssessmentStatus.NOT_APPLICABLE, False, AssessmentStatus.NOT_APPLICABLE),
    (AssessmentStatus.UNSUPPORTED, False, AssessmentStatus.UNSUPPORTED),
])
def test_ruled_status(analysis: AssessmentStatus, active: bool,
                      expected: AssessmentStatus) -> None:
    findings = (make_finding(disabled_by="" if active else "r1"),)
    assert ruled_status(findings, analysis) is expected


def test_the_image_is_as_bad_as_its_worst_platform() -> None:
    assert [worst(statuses) for statuses in (
        (AssessmentStatus.HEALTHY, AssessmentStatus.UNSUPPORTED),
        (AssessmentStatus.PARTIAL, AssessmentStatus.UNHEALTHY),
        (AssessmentStatus.UNHEALTHY, AssessmentStatus.FAILED),
        (AssessmentStatus.NOT_APPLICABLE, AssessmentStatus.HEALTHY),
        (),
    )] == [AssessmentStatus.UNSUPPORTED, AssessmentStatus.UNHEALTHY, AssessmentStatus.FAILED,
           AssessmentStatus.HEALTHY, AssessmentStatus.NOT_APPLICABLE]


def test_rules_disable_findings_per_platform_and_the_worst_platform_decides() -> None:
    rule = DisableRule(id="r1", justification="accepted", created=NOW,
                       criteria=RuleCriteria(vulnerability_ids=("CVE-1",)))
    verdict = reassess((
        PlatformFindings(platform="linux/amd64", findings=(make_finding("CVE-1"),),
                         analysis=AssessmentStatus.UNHEALTHY),
        PlatformFindings(platform="linux/arm64", findings=(), reason=NO_PACKAGES_REASON,
                         analysis=AssessmentStatus.UNSUPPORTED),
    ), image=IMAGE, rules=(rule,), now=NOW)
    assert (verdict.status, verdict.analysis, verdict.active, verdict.disabled,
            [p.status for p in verdict.platforms], verdict.reason) == (
        AssessmentStatus.UNSUPPORTED, AssessmentStatus.UNHEALTHY, 0, 1,
        [AssessmentStatus.HEALTHY, AssessmentStatus.UNSUPPORTED],
        f"linux/arm64: {NO_PACKAGES_REASON}")


def test_assess_inventories_keeps_each_platforms_analysis_and_warnings() -> None:
    partial = dataclasses.replace(inventory(InventoryStatus.PARTIAL, errors=("npm failed",)),
                                  warnings=("skipped 1 entry",))
    verdict = assess_inventories((partial,), (UNHEALTHY,), image=IMAGE, rules=(), now=NOW)
    (platform,) = verdict.platforms
    assert (platform.analysis, platform.status, platform.warnings, verdict.counts.active) == (
        AssessmentStatus.UNHEALTHY, AssessmentStatus.UNHEALTHY, ("skipped 1 entry",),
        {**dict.fromkeys(Severity, 0), make_finding("CVE-1").severity: 1})


# ---------------------------------------------------------------- one answer: CLI and app

OS_RELEASE = b'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.10.4\n'
UNKNOWN_OS = b'NAME="Nowhere"\nID=nowhereos\nVERSION_ID=1\n'


def apk_db(*packages: tuple[str, str]) -> bytes:
    return b"".join(f"P:{name}\nV:{version}\nA:x86_64\no:{name}\n\n".encode()
                    for name, version in packages)


METADATA = b"Metadata-Version: 2.1\nName: requests\nVersion: 2.0.0\n"
BROKEN_JSON = b'{"name": "left-pad", "version": '

CASES = {
    "vulnerable alpine": {"etc/os-release": OS_RELEASE,
                          "lib/apk/db/installed": apk_db(("musl", "1.1.22-r3"))},
    "clean alpine": {"etc/os-release": OS_RELEASE,
                     "lib/apk/db/installed": apk_db(("musl", "1.1.22-r4"))},
    "nothing to inventory": {"etc/os-release": OS_RELEASE},
    "clean but a package.json unreadable": {
        "etc/os-release": OS_RELEASE, "lib/apk/db/installed": apk_db(("musl", "1.1.22-r4")),
        "app/node_modules/left-pad/package.json": BROKEN_JSON},
    "vulnerable and a package.json unreadable": {
        "etc/os-release": OS_RELEASE, "lib/apk/db/installed": apk_db(("musl", "1.1.22-r3")),
        "app/node_modules/left-pad/package.json": BROKEN_JSON},
    "an OS without advisory data": {"etc/os-release": UNKNOWN_OS,
                                    "lib/apk/db/installed": apk_db(("musl", "1.1.22-r3"))},
    "a language package and no OS": {
        "usr/lib/python3/site-packages/requests-2.0.0.dist-info/METADATA": METADATA},
}
EXPECTED_STATUS = {
    "vulnerable alpine": (AssessmentStatus.UNHEALTHY, 1),
    "clean alpine": (AssessmentStatus.HEALTHY, 0),
    "nothing to inventory": (AssessmentStatus.UNSUPPORTED, 0),
    "clean but a package.json unreadable": (AssessmentStatus.PARTIAL, 0),
    "vulnerable and a package.json unreadable": (AssessmentStatus.UNHEALTHY, 1),
    "an OS without advisory data": (AssessmentStatus.UNSUPPORTED, 0),
    "a language package and no OS": (AssessmentStatus.UNHEALTHY, 1),
}


@pytest.fixture(scope="module")
def demo_index(tmp_path_factory: pytest.TempPathFactory) -> AdvisoryIndex:
    return build_demo_index(tmp_path_factory.mktemp("db") / "demo.idx")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cli_and_the_app_give_one_verdict(case: str, tmp_path: Path,
                                              demo_index: AdvisoryIndex) -> None:
    build_oci_layout(tmp_path, [(AMD64, [CASES[case]])])
    reference = f"oci:{tmp_path}:latest"
    report = scan_image(reference, demo_index)
    (cli,) = report.platforms
    analysis = analyze_image(reference)
    app = evaluate(analysis.inventories, rules=(), index=demo_index, moment=NOW,
                   request=ScanRequest(registry="r.io", repository="team/app",
                                       digest=analysis.digest)).verdict
    (app_platform,) = app.platforms
    assert (cli.status, cli.reason, len(cli.findings), cli.warnings) == (
        app.status, app_platform.reason, app.active, app_platform.warnings)
    assert (cli.status, len(cli.findings)) == EXPECTED_STATUS[case]
    if case == "nothing to inventory":
        assert cli.reason == NO_PACKAGES_REASON
