from __future__ import annotations

import json

import pytest

from scanning.local.services import Azurite
from scanning.model import (
    AssessmentStatus,
    Finding,
    FixStatus,
    MatchDetail,
    PackageType,
    Severity,
)
from scanning.notify import build_message, needs_notification, send, summarise
from scanning.store.clients import StorageClients
from scanning.store.queue import NotificationQueue


def finding(advisory: str, severity: Severity, *, disabled_by: str = "") -> Finding:
    return Finding(
        id=advisory, aliases=(), package="openssl", installed_version="3.0.11-1~deb12u1",
        package_type=PackageType.DPKG, purl="pkg:deb/debian/openssl@3.0.11-1~deb12u1",
        source_package="openssl", fixed_version="3.0.11-1~deb12u2",
        fix_status=FixStatus.FIXED, severity=severity, vendor_severity="", cvss=(),
        remediation="Upgrade openssl", summary="", description="", published="", modified="",
        references=(), layer_digest="sha256:aa", layer_instruction="", path="var/lib/dpkg/status",
        match=MatchDetail(ecosystem="Debian:12", searched_name="openssl",
                          searched_version="3.0.11-1~deb12u1", range="introduced 0"),
        disabled_by=disabled_by,
    )


def test_first_unhealthy_assessment_notifies() -> None:
    current = summarise(AssessmentStatus.UNHEALTHY, [finding("CVE-1", Severity.HIGH)])
    assert needs_notification(None, current) is True


def test_healthy_assessment_never_notifies() -> None:
    assert needs_notification(None, summarise(AssessmentStatus.HEALTHY, [])) is False


def test_unchanged_findings_do_not_notify_again() -> None:
    findings = [finding("CVE-1", Severity.HIGH)]
    previous = summarise(AssessmentStatus.UNHEALTHY, findings)
    assert needs_notification(previous, summarise(AssessmentStatus.UNHEALTHY, findings)) is False


def test_a_new_active_finding_notifies() -> None:
    previous = summarise(AssessmentStatus.UNHEALTHY, [finding("CVE-1", Severity.HIGH)])
    current = summarise(AssessmentStatus.UNHEALTHY,
                        [finding("CVE-1", Severity.HIGH), finding("CVE-2", Severity.LOW)])
    assert needs_notification(previous, current) is True


def test_a_new_disabled_finding_does_not_notify() -> None:
    previous = summarise(AssessmentStatus.UNHEALTHY, [finding("CVE-1", Severity.HIGH)])
    current = summarise(AssessmentStatus.UNHEALTHY, [
        finding("CVE-1", Severity.HIGH), finding("CVE-2", Severity.LOW, disabled_by="rule-1")])
    assert needs_notification(previous, current) is False


def test_message_counts_active_findings_by_severity_and_ranks_the_top() -> None:
    findings = [finding("CVE-1", Severity.LOW), finding("CVE-2", Severity.CRITICAL),
                finding("CVE-3", Severity.HIGH, disabled_by="rule-1")]
    message = build_message(registry="r.azurecr.io", repository="team/app", digest="sha256:bb",
                            tags=["2", "1"], status=AssessmentStatus.UNHEALTHY,
                            findings=findings, previous=None)
    assert message == {
        "registry": "r.azurecr.io", "repository": "team/app", "digest": "sha256:bb",
        "tags": ["1", "2"], "status": "unhealthy",
        "counts": {"unknown": 0, "negligible": 0, "low": 1, "medium": 0, "high": 0,
                   "critical": 1},
        "newFindings": 2,
        "topFindings": [
            {"id": "CVE-2", "severity": "critical", "package": "openssl",
             "installedVersion": "3.0.11-1~deb12u1", "fixedVersion": "3.0.11-1~deb12u2",
             "remediation": "Upgrade openssl"},
            {"id": "CVE-1", "severity": "low", "package": "openssl",
             "installedVersion": "3.0.11-1~deb12u1", "fixedVersion": "3.0.11-1~deb12u2",
             "remediation": "Upgrade openssl"},
        ],
    }


def test_message_lists_a_finding_of_every_platform_once() -> None:
    # An index's amd64 and arm64 images both have CVE-1 in the same openssl version.
    findings = [finding("CVE-1", Severity.HIGH), finding("CVE-1", Severity.HIGH),
                finding("CVE-2", Severity.LOW)]
    message = build_message(registry="r.azurecr.io", repository="team/app", digest="sha256:bb",
                            tags=[], status=AssessmentStatus.UNHEALTHY,
                            findings=findings, previous=None)
    assert ([item["id"] for item in message["topFindings"]], message["newFindings"]) == (
        ["CVE-1", "CVE-2"], 2)


@pytest.mark.integration
def test_message_lands_on_the_storage_queue(azurite: Azurite) -> None:
    queue = NotificationQueue(StorageClients.from_connection_string(azurite.connection_string),
                              "notify-test")
    queue.create()
    send({"digest": "sha256:bb", "status": "unhealthy"}, queue=queue, webhook_url="")
    assert [json.loads(body) for body in queue.receive()] == [
        {"digest": "sha256:bb", "status": "unhealthy"}]
