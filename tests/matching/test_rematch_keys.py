"""What a re-match depends on: the lookups of an inventory, their hit signatures, and whether
an index change can change them (the weekly rescan's test without the inventory)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scanning.advisories.index import IndexChange, compile_index, diff_key_fingerprints
from scanning.advisories.index import key_fingerprints as fingerprints_of
from scanning.matching import lookup_signature, lookups_affected, package_lookups
from scanning.model import OSInfo, Package, PackageType

BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)
ALPINE = OSInfo(id="alpine", version_id="3.19.1")
RHEL = OSInfo(id="rhel", version_id="9.3")
PACKAGES = (
    Package(type=PackageType.APK, name="libssl3", version="3.1.4-r0", purl="", path="",
            source_name="openssl"),
    Package(type=PackageType.PYPI, name="Some_Package", version="1.5", purl="", path=""),
    Package(type=PackageType.GOLANG, name="example.com/mod", version="v1.2.3", purl="", path=""),
)


def _record(advisory_id: str, name: str, fixed: str, modified: str = "2024-01-01T00:00:00Z",
            introduced: str = "0") -> dict[str, Any]:
    return {"id": advisory_id, "modified": modified, "affected": [{
        "package": {"ecosystem": "PyPI", "name": name},
        "ranges": [{"type": "ECOSYSTEM",
                    "events": [{"introduced": introduced}, {"fixed": fixed}]}],
    }]}


def test_lookups_are_what_the_matcher_looks_up_whatever_the_index_holds() -> None:
    assert package_lookups(ALPINE, PACKAGES) == (
        ("Alpine:v3.19", "libssl3", "3.1.4-r0"),
        ("Alpine:v3.19", "openssl", "3.1.4-r0"),
        ("Go", "example.com/mod", "1.2.3"),
        ("PyPI", "some-package", "1.5"),
    )


def test_red_hat_lookups_keep_the_ecosystem_prefix_as_a_wildcard() -> None:
    package = Package(type=PackageType.RPM, name="openssl-libs", version="1:3.0.7-24.el9",
                      purl="", path="", source_name="openssl")
    assert package_lookups(RHEL, (package,)) == (
        ("Red Hat:enterprise_linux:9:*", "openssl", "1:3.0.7-24.el9"),
        ("Red Hat:enterprise_linux:9:*", "openssl-libs", "1:3.0.7-24.el9"),
    )


def test_alpine_branch_from_repositories_is_the_lookup_ecosystem() -> None:
    upgraded = OSInfo(id="alpine", version_id="3.19.1", branch="v3.20")
    assert package_lookups(upgraded, PACKAGES[:1]) == (
        ("Alpine:v3.20", "libssl3", "3.1.4-r0"),
        ("Alpine:v3.20", "openssl", "3.1.4-r0"),
    )


def test_alpine_edge_lookups_keep_every_alpine_branch_as_a_wildcard() -> None:
    # edge is the newest branch the index holds at match time: any Alpine change may matter.
    edge = OSInfo(id="alpine", version_id="3.19.1", branch="edge")
    assert package_lookups(edge, PACKAGES[:1]) == (
        ("Alpine:*", "libssl3", "3.1.4-r0"),
        ("Alpine:*", "openssl", "3.1.4-r0"),
    )


def test_signature_is_empty_without_hits_and_differs_with_them() -> None:
    index = compile_index([_record("X-1", "some-package", "1.0"),
                           _record("X-2", "other", "2.0")], built=BUILT)
    assert (lookup_signature(index, ("PyPI", "some-package", "1.5")),
            lookup_signature(index, ("PyPI", "some-package", "0.5")) != "",
            lookup_signature(index, ("PyPI", "absent", "0.5"))) == ("", True, "")


def _change(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> IndexChange:
    return diff_key_fingerprints(fingerprints_of(compile_index(old, built=BUILT)),
                                 fingerprints_of(compile_index(new, built=BUILT)))


def _signed(records: list[dict[str, Any]], version: str) -> list[tuple[Any, str]]:
    index = compile_index(records, built=BUILT)
    lookup = ("PyPI", "some-package", version)
    return [(lookup, lookup_signature(index, lookup))]


def test_change_on_other_packages_does_not_affect_the_image() -> None:
    old = [_record("X-1", "some-package", "1.0")]
    new = [*old, _record("X-2", "other", "2.0")]
    assert lookups_affected(_signed(old, "0.5"), _change(old, new),
                            compile_index(new, built=BUILT)) is False


def test_new_advisory_missing_the_version_does_not_affect_the_image() -> None:
    old = [_record("X-1", "some-package", "1.0")]
    new = [*old, _record("X-2", "some-package", "0.3")]
    assert lookups_affected(_signed(old, "0.5"), _change(old, new),
                            compile_index(new, built=BUILT)) is False


def test_new_advisory_hitting_the_version_affects_the_image() -> None:
    old = [_record("X-1", "some-package", "1.0")]
    new = [*old, _record("X-2", "some-package", "0.9")]
    assert lookups_affected(_signed(old, "0.5"), _change(old, new),
                            compile_index(new, built=BUILT)) is True


def test_modified_advisory_hitting_the_version_affects_the_image() -> None:
    old = [_record("X-1", "some-package", "1.0")]
    new = [_record("X-1", "some-package", "1.0", modified="2024-06-01T00:00:00Z")]
    assert lookups_affected(_signed(old, "0.5"), _change(old, new),
                            compile_index(new, built=BUILT)) is True


def test_ecosystem_leaving_the_index_affects_its_images() -> None:
    old = [_record("X-1", "some-package", "1.0")]
    assert lookups_affected(_signed(old, "5.0"), IndexChange(ecosystems=frozenset({"PyPI"})),
                            compile_index(old, built=BUILT)) is True
