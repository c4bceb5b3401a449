"""Matching for Azure Linux / CBL-Mariner rpm packages and NuGet packages.

Records: invented OSV records in the shapes the OVAL adapter and GitHub's NuGet advisories
write (``records`` below), so each test shows one rule.
"""

from __future__ import annotations

from typing import Any

from scanning.advisories.index import compile_index
from scanning.matching import MatchResult, match_inventory
from scanning.model import AssessmentStatus, OSInfo, Package, PackageType


def record(record_id: str, ecosystem: str, name: str, fixed: str) -> dict[str, Any]:
    return {"id": record_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
    }]}


def rpm(name: str, version: str, source: str) -> Package:
    return Package(type=PackageType.RPM, name=name, version=version, purl="",
                   path="var/lib/rpm/rpmdb.sqlite", source_name=source)


def nuget(name: str, version: str) -> Package:
    return Package(type=PackageType.NUGET, name=name, version=version,
                   purl=f"pkg:nuget/{name}@{version}", path="app/a.deps.json")


AZURE_LINUX_3 = OSInfo(id="azurelinux", version_id="3.0")


def test_azure_linux_binary_rpm_matches_its_source_rpm_record() -> None:
    index = compile_index([record("AZURELINUX-3.0-curl-CVE-1", "Azure Linux:3.0", "curl",
                                  "8.8.0-2.azl3")])
    result = match_inventory(AZURE_LINUX_3, [rpm("curl-libs", "8.8.0-1.azl3", "curl")], index)
    assert [(f.package, f.source_package, f.fixed_version, f.match.searched_name)
            for f in result.findings] == [("curl-libs", "curl", "8.8.0-2.azl3", "curl")]


def test_rpm_release_decides_when_versions_are_equal() -> None:
    index = compile_index([record("AZURELINUX-3.0-curl-CVE-1", "Azure Linux:3.0", "curl",
                                  "8.8.0-2.azl3")])
    result = match_inventory(AZURE_LINUX_3, [rpm("curl", "8.8.0-2.azl3", "curl")], index)
    assert result == MatchResult(status=AssessmentStatus.HEALTHY, findings=(), reason="")


def test_index_without_azure_linux_3_names_it() -> None:
    index = compile_index([record("MARINER-2.0-curl-CVE-1", "Mariner:2.0", "curl",
                                  "8.8.0-2.cm2")])
    result = match_inventory(AZURE_LINUX_3, [rpm("curl", "8.8.0-1.azl3", "curl")], index)
    assert result == MatchResult(
        status=AssessmentStatus.UNSUPPORTED, findings=(),
        reason="the advisory index has no records for Azure Linux 3.0 (Azure Linux:3.0)",
    )


def test_nuget_ids_match_case_insensitively() -> None:
    index = compile_index([record("GHSA-1", "NuGet", "Newtonsoft.Json", "13.0.1")])
    result = match_inventory(None, [nuget("newtonsoft.json", "9.0.1")], index)
    assert [(f.id, f.package, f.fixed_version) for f in result.findings] == [
        ("GHSA-1", "newtonsoft.json", "13.0.1")
    ]


def test_nuget_four_part_version_at_the_fix_is_not_affected() -> None:
    # NuGet: 13.0.1.0 is 13.0.1, the fixed version.
    index = compile_index([record("GHSA-1", "NuGet", "Newtonsoft.Json", "13.0.1")])
    result = match_inventory(None, [nuget("Newtonsoft.Json", "13.0.1.0")], index)
    assert result == MatchResult(status=AssessmentStatus.HEALTHY, findings=(), reason="")


def test_index_without_nuget_names_it() -> None:
    index = compile_index([record("GHSA-2", "npm", "left-pad", "1.0.0")])
    result = match_inventory(None, [nuget("Newtonsoft.Json", "9.0.1")], index)
    assert result == MatchResult(status=AssessmentStatus.UNSUPPORTED, findings=(),
                                 reason="the advisory index has no records for NuGet")
