"""The demo's image, its findings against the demo advisories, and how the demo reads the API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.demo import build_demo_index
from scanning.commands.scan import scan_image
from scanning.local.demo import (
    ApiClient,
    DemoError,
    assessed_since,
    build_demo_image,
    finding_lines,
    wait_for_assessment,
)
from scanning.model import AssessmentStatus

PUSHED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_demo_image_has_the_flagged_packages_on_both_platforms(tmp_path: Path) -> None:
    build_demo_image(tmp_path / "layout")
    report = scan_image(f"oci:{tmp_path / 'layout'}:v1", build_demo_index(tmp_path / "idx"))
    expected_findings = [
        ("DEMO-pypi-0001", "requests", "2.22.0", "99.0.0"),
        ("DEMO-v3.11-0001", "musl", "1.1.24-r2", "1.1.24-r3"),
        ("DEMO-v3.11-0001", "musl-utils", "1.1.24-r2", "1.1.24-r3"),
        ("DEMO-v3.11-0002", "libcrypto1.1", "1.1.1d-r3", ""),
        ("DEMO-v3.11-0002", "libssl1.1", "1.1.1d-r3", ""),
        ("DEMO-v3.11-0003", "busybox", "1.31.1-r9", "9.9.9-r0"),
        ("DEMO-v3.11-0003", "ssl_client", "1.31.1-r9", "9.9.9-r0"),
    ]
    assert [
        (platform.platform, platform.os.pretty_name if platform.os else None, platform.status,
         sorted((finding.id, finding.package, finding.installed_version, finding.fixed_version)
                for finding in platform.findings))
        for platform in report.platforms
    ] == [
        ("linux/amd64", "Alpine Linux v3.11", AssessmentStatus.UNHEALTHY, expected_findings),
        ("linux/arm64/v8", "Alpine Linux v3.11", AssessmentStatus.UNHEALTHY, expected_findings),
    ]


def test_demo_image_digest_is_the_same_on_every_build(tmp_path: Path) -> None:
    assert build_demo_image(tmp_path / "one") == build_demo_image(tmp_path / "two")


def _sub_assessment(severity: str, advisory: str, package: str, fixed: str, platform: str,
                    code: str = "Unhealthy") -> dict[str, Any]:
    return {"properties": {
        "status": {"code": code, "severity": severity},
        "remediation": f"Upgrade {package}",
        "additionalData": {
            "vulnerabilityDetails": {"advisoryId": advisory},
            "softwareDetails": {"packageName": package, "version": "1.0",
                                "fixedVersion": fixed or None},
            "artifactDetails": {"platform": platform},
        },
    }}


def test_finding_lines_group_by_severity_and_list_each_finding_once_with_its_platforms() -> None:
    image = {"subAssessments": [
        _sub_assessment("Low", "DEMO-3", "busybox", "2.0", "linux/amd64"),
        _sub_assessment("Critical", "DEMO-1", "musl", "1.1", "linux/arm64/v8"),
        _sub_assessment("Critical", "DEMO-1", "musl", "1.1", "linux/amd64"),
        _sub_assessment("Medium", "DEMO-2", "openssl", "", "linux/amd64"),
        _sub_assessment("High", "DEMO-4", "zlib", "2.0", "linux/amd64", code="NotApplicable"),
    ]}
    assert finding_lines(image) == [
        "  Critical (1)",
        "    DEMO-1             musl           1.0 -> 1.1   [linux/amd64, linux/arm64/v8]",
        "      remediation: Upgrade musl",
        "  Medium (1)",
        "    DEMO-2             openssl        1.0 -> (no fix)   [linux/amd64]",
        "      remediation: Upgrade openssl",
        "  Low (1)",
        "    DEMO-3             busybox        1.0 -> 2.0   [linux/amd64]",
        "      remediation: Upgrade busybox",
        "  (1 findings disabled by rules)",
    ]


def test_an_assessment_from_before_the_push_does_not_count() -> None:
    earlier = {"status": "unhealthy", "assessedAt": "2026-03-01T11:59:59.999999Z"}
    assert assessed_since(earlier, PUSHED) is False


def test_an_assessment_made_after_the_push_counts() -> None:
    later = {"status": "unhealthy", "assessedAt": "2026-03-01T12:00:01.5Z"}
    assert assessed_since(later, PUSHED) is True


class _ScriptedClient(ApiClient):
    """Answers ``GET images/{digest}`` with the next body of a script (the last one repeats)."""

    def __init__(self, bodies: list[dict[str, Any] | None]) -> None:
        super().__init__(base_url="http://127.0.0.1:1", key="key")
        object.__setattr__(self, "_bodies", bodies)

    __slots__ = ("_bodies",)

    def get(self, route: str, **query: str) -> Any | None:
        bodies: list[dict[str, Any] | None] = self._bodies  # type: ignore[attr-defined]
        return bodies.pop(0) if len(bodies) > 1 else bodies[0]


def test_wait_for_assessment_returns_the_first_new_assessment() -> None:
    recorded = {"status": None, "assessedAt": None}
    assessed = {"status": "unhealthy", "assessedAt": "2026-03-01T12:00:02Z"}
    client = _ScriptedClient([None, recorded, assessed])
    assert wait_for_assessment(client, "sha256:" + "a" * 64, PUSHED, sleep=lambda _: None) \
        == assessed


def test_wait_for_assessment_gives_up_after_the_timeout_naming_the_last_state() -> None:
    ticks = iter(range(100))
    client = _ScriptedClient([{"status": None, "assessedAt": None}])
    with pytest.raises(DemoError, match=r"not assessed within 5s \(last seen: None\)"):
        wait_for_assessment(client, "sha256:" + "a" * 64, PUSHED, timeout=5,
                            clock=lambda: float(next(ticks)), sleep=lambda _: None)
