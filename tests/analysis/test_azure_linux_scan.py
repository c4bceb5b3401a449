"""End to end: a CBL-Mariner 2.0 image scanned against Microsoft's CBL-Mariner 2.0 OVAL feed.

The image is built by the test (``scanning.ocibuild``) from the real rpm database of a
CBL-Mariner 2.0 image (``pkgdb/rpm/sqlite/cbl-mariner-2.0_rpmdb.sqlite``, 129 packages) and a
CBL-Mariner 2.0 ``etc/os-release`` (the fields the real 2.0 release carries). The index is
compiled by ``db build --azure-linux-oval`` from the real feed
(``advisories/native-feeds/azure-linux/cbl-mariner-2.0-oval.xml.xz``). Every expected finding
below was checked against the feed's definition for that package and CVE.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scanning.cli import main
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout

MARINER_OS_RELEASE = (
    b'NAME="Common Base Linux Mariner"\nVERSION="2.0.20220226"\nID=mariner\n'
    b'VERSION_ID="2.0"\nPRETTY_NAME="CBL-Mariner/Linux"\nANSI_COLOR="1;34"\n'
    b'HOME_URL="https://aka.ms/cbl-mariner"\n'
)
Row = tuple[str, str, str, str, str, str]


@pytest.fixture(scope="module")
def report(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    rpmdb = (testdata / "pkgdb/rpm/sqlite/cbl-mariner-2.0_rpmdb.sqlite").read_bytes()
    return scan(testdata, tmp_path_factory.mktemp("mariner"),
                {"etc/os-release": MARINER_OS_RELEASE, "var/lib/rpm/rpmdb.sqlite": rpmdb})


def scan(testdata: Path, folder: Path, layer: dict[str, bytes]) -> dict[str, Any]:
    """The JSON report of a one-layer image scanned against the real 2.0 feed."""
    build_oci_layout(folder / "image", [(Platform(os="linux", architecture="amd64"), [layer])])
    index = folder / "mariner.idx"
    feed = testdata / "advisories/native-feeds/azure-linux/cbl-mariner-2.0-oval.xml.xz"
    assert main(["db", "build", "--azure-linux-oval", str(feed), "--out", str(index)]) == 0
    output = folder / "report.json"
    main(["scan", f"oci:{folder / 'image'}", "--db", str(index), "--format", "json",
          "--output", str(output)])
    return json.loads(output.read_text())  # type: ignore[no-any-return]


def rows(report: dict[str, Any], *packages: str) -> list[Row]:
    return [
        (f["package"], f["sourcePackage"], f["id"], f["fixedVersion"], f["fixStatus"],
         f["severity"])
        for f in report["platforms"][0]["findings"] if f["package"] in packages
    ]


# The 2.0 feed's systemd definition for CVE-2023-7008 has a malformed EVR: rejected, and both
# packages built from systemd say they were not assessed against it.
SYSTEMD_REJECTED = (
    "systemd 249.7-3.cm2: not assessed against advisory record "
    "MARINER-2.0-systemd-CVE-2023-7008, which could not be compiled (rejected); "
    "systemd-rpm-macros 249.7-3.cm2: not assessed against advisory record "
    "MARINER-2.0-systemd-CVE-2023-7008, which could not be compiled (rejected)"
)


def test_status_os_and_counts(report: dict[str, Any]) -> None:
    platform = report["platforms"][0]
    findings = platform["findings"]
    assert (
        platform["status"], platform["reason"], platform["os"], len(platform["packages"]),
        len(findings), sum(f["fixStatus"] == "not_fixed" for f in findings),
    ) == ("unhealthy", SYSTEMD_REJECTED, {"name": "mariner", "version": "2.0"}, 129, 372, 5)


def test_binary_package_is_matched_through_its_source_rpm(report: dict[str, Any]) -> None:
    # python3-libs is built from the python3 source rpm; the feed names python3 only.
    assert rows(report, "python3-libs") == [
        ("python3-libs", "python3", "CVE-2022-37454", "3.9.14-5.cm2",
         "fixed", "critical"),
        ("python3-libs", "python3", "CVE-2015-20107", "3.9.13-5.cm2",
         "fixed", "high"),
        ("python3-libs", "python3", "CVE-2022-42919", "3.9.14-5.cm2",
         "fixed", "high"),
        ("python3-libs", "python3", "CVE-2022-45061", "3.9.14-5.cm2",
         "fixed", "high"),
        ("python3-libs", "python3", "CVE-2023-24329", "3.9.14-8.cm2",
         "fixed", "high"),
        ("python3-libs", "python3", "CVE-2007-4559", "", "not_fixed",
         "medium"),
    ]


def test_unfixed_definitions_give_not_fixed_findings(report: dict[str, Any]) -> None:
    assert rows(report, "unzip") == [
        ("unzip", "unzip", "CVE-2022-0529", "", "not_fixed", "medium"),
        ("unzip", "unzip", "CVE-2022-0530", "", "not_fixed", "medium"),
        ("unzip", "unzip", "CVE-2021-4217", "", "not_fixed", "low"),
    ]


def test_fixed_version_and_remediation_read_like_the_installed_version(
    report: dict[str, Any],
) -> None:
    [finding] = [f for f in report["platforms"][0]["findings"]
                 if f["package"] == "zlib" and f["id"] == "CVE-2022-37434"]
    assert (finding["installedVersion"], finding["fixedVersion"], finding["remediation"],
            finding["match"]) == (
        "1.2.11-5.cm2", "1.2.12-2.cm2",
        "Upgrade zlib from 1.2.11-5.cm2 to 1.2.12-2.cm2 (fixed in CBL-Mariner 2.0)",
        {"ecosystem": "Mariner:2.0", "searchedName": "zlib", "searchedVersion": "1.2.11-5.cm2",
         "range": "introduced 0, fixed 1.2.12-2.cm2"},
    )


@pytest.fixture(scope="module")
def distroless_report(testdata: Path, tmp_path_factory: pytest.TempPathFactory
                      ) -> dict[str, Any]:
    # Distroless CBL-Mariner: no rpm database, only the rpm manifest (Syft's copy from the
    # CBL-Mariner 2.0 distroless base image) and usr/lib/os-release.
    manifest = (testdata / "pkgdb/rpm/rpmmanifest/syft_cbl-mariner-2.0_container-manifest-2"
                ).read_bytes()
    return scan(testdata, tmp_path_factory.mktemp("distroless"),
                {"usr/lib/os-release": MARINER_OS_RELEASE,
                 "var/lib/rpmmanifest/container-manifest-2": manifest})


def test_distroless_image_is_matched_from_its_rpm_manifest(
    distroless_report: dict[str, Any],
) -> None:
    # openssl-libs 1.1.1k-15.cm2 (source openssl): every openssl definition of the feed whose
    # fix is later than -15 (CVE-2022-1292, fixed in -15 itself, is not one).
    assert (distroless_report["platforms"][0]["status"],
            sorted((row[2], row[3]) for row in rows(distroless_report, "openssl-libs"))) == (
        "unhealthy",
        [("CVE-2022-2068", "1.1.1k-17.cm2"),
         ("CVE-2022-2097", "1.1.1k-20.cm2"),
         ("CVE-2022-4304", "1.1.1k-21.cm2"),
         ("CVE-2022-4450", "1.1.1k-21.cm2"),
         ("CVE-2023-0215", "1.1.1k-21.cm2"),
         ("CVE-2023-0286", "1.1.1k-21.cm2"),
         ("CVE-2023-0465", "1.1.1k-23.cm2"),
         ("CVE-2023-0466", "1.1.1k-23.cm2"),
         ("CVE-2023-2650", "1.1.1k-25.cm2"),
         ("CVE-2023-3817", "1.1.1k-26.cm2"),
         ("CVE-2023-5678", "1.1.1k-28.cm2")],
    )
