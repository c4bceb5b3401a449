"""Package URLs: analyzer output, and completion with the image's OS at merge time."""

from __future__ import annotations

import pytest

from scanning.analyzers.purl import distro_qualifier, make_purl, qualify_purl
from scanning.model import OSInfo, Package, PackageType

DEB = Package(
    type=PackageType.DPKG,
    name="libstdc++6",
    version="1:8-20180414-1ubuntu2",
    purl=make_purl(
        PackageType.DPKG, "libstdc++6", "1:8-20180414-1ubuntu2", qualifiers={"arch": "amd64"}
    ),
    path="var/lib/dpkg/status",
    arch="amd64",
)


def test_make_purl_encodes_and_drops_empty_qualifiers() -> None:
    assert DEB.purl == "pkg:deb/libstdc%2B%2B6@1:8-20180414-1ubuntu2?arch=amd64"
    assert make_purl(PackageType.APK, "musl", "1.2-r0", qualifiers={"arch": ""}) == (
        "pkg:apk/musl@1.2-r0"
    )
    assert make_purl(PackageType.NPM, "core", "7.0.0", namespace="@babel") == (
        "pkg:npm/%40babel/core@7.0.0"
    )


def test_qualify_purl_adds_namespace_and_distro() -> None:
    ubuntu = OSInfo(id="ubuntu", version_id="18.04", codename="bionic")
    assert qualify_purl(DEB, ubuntu).purl == (
        "pkg:deb/ubuntu/libstdc%2B%2B6@1:8-20180414-1ubuntu2?arch=amd64&distro=ubuntu-18.04"
    )


@pytest.mark.parametrize(
    ("os_info", "expected"),
    [
        (
            OSInfo(id="alpine", version_id="3.11.5"),
            "pkg:apk/alpine/musl@1.1.24-r2?arch=x86_64&distro=alpine-3.11.5",
        ),
        (
            OSInfo(id="wolfi", version_id="20230201"),
            "pkg:apk/wolfi/musl@1.1.24-r2?arch=x86_64&distro=wolfi-20230201",
        ),
        (OSInfo(id="wolfi"), "pkg:apk/wolfi/musl@1.1.24-r2?arch=x86_64&distro=wolfi"),
    ],
)
def test_qualify_purl_for_apk(os_info: OSInfo, expected: str) -> None:
    package = Package(
        type=PackageType.APK,
        name="musl",
        version="1.1.24-r2",
        purl="pkg:apk/musl@1.1.24-r2?arch=x86_64",
        path="lib/apk/db/installed",
    )
    assert qualify_purl(package, os_info).purl == expected


def test_qualify_purl_uses_purl_spec_namespace_for_rhel() -> None:
    package = Package(
        type=PackageType.RPM,
        name="curl",
        version="7.76.1-26.el9",
        purl="pkg:rpm/curl@7.76.1-26.el9?arch=x86_64",
        path="x",
    )
    assert qualify_purl(package, OSInfo(id="rhel", version_id="9.3")).purl == (
        "pkg:rpm/redhat/curl@7.76.1-26.el9?arch=x86_64&distro=rhel-9.3"
    )


def test_qualify_purl_leaves_language_packages_alone() -> None:
    package = Package(
        type=PackageType.PYPI, name="six", version="1.16.0", purl="pkg:pypi/six@1.16.0", path="x"
    )
    assert qualify_purl(package, OSInfo(id="debian", version_id="12")) is package


def test_qualify_purl_without_os_is_unchanged() -> None:
    assert qualify_purl(DEB, None) is DEB


def test_qualify_purl_twice_is_harmless() -> None:
    debian = OSInfo(id="debian", version_id="12")
    once = qualify_purl(DEB, debian)
    assert qualify_purl(once, debian) == once


def test_distro_qualifier() -> None:
    assert distro_qualifier(OSInfo(id="debian", version_id="12")) == "debian-12"
