"""The matcher remembers each package's matches per index (``AdvisoryIndex.package_memo``):
images that share a package reuse its findings, in their own layer, with the same reason.

Records: the PyPA advisory database's jinja2 folder (``../shared/testdata/advisories``, read
in place), and two invented records for the rejected-record and failed-comparison counts.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning import matching
from scanning.advisories.index import AdvisoryIndex, compile_index
from scanning.advisories.osv import iter_records
from scanning.matching import MatchResult, match_inventory
from scanning.model import AssessmentStatus, OSInfo, Package, PackageType

BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)
LAYER_A = "sha256:" + "a" * 64
LAYER_B = "sha256:" + "b" * 64


def _jinja2(version: str, layer: str = "", instruction: str = "") -> Package:
    return Package(type=PackageType.PYPI, name="Jinja2", version=version,
                   purl=f"pkg:pypi/jinja2@{version}", path="usr/lib/python3/site-packages",
                   layer_digest=layer, layer_instruction=instruction)


def _index(shared_advisories: Path) -> AdvisoryIndex:
    folder = shared_advisories / "osv" / "pypi-pypa-advisory-database" / "jinja2"
    return compile_index(iter_records(folder), built=BUILT)


def _fresh(shared_advisories: Path, packages: list[Package], **kwargs: Any) -> MatchResult:
    """The match on an index nothing was matched against before (an empty memo)."""
    return match_inventory(None, packages, _index(shared_advisories), **kwargs)


def test_a_package_met_again_in_another_layer_gets_its_own_layer(
    shared_advisories: Path,
) -> None:
    index = _index(shared_advisories)
    first = match_inventory(None, [_jinja2("2.10", LAYER_A, "RUN pip install a")], index)
    second = match_inventory(None, [_jinja2("2.10", LAYER_B, "RUN pip install b")], index)
    assert len(index.package_memo) == 1
    assert [f.id for f in first.findings] == ["CVE-2019-10906", "CVE-2020-28493"]
    assert {(f.layer_digest, f.layer_instruction) for f in first.findings} == {
        (LAYER_A, "RUN pip install a")}
    assert {(f.layer_digest, f.layer_instruction) for f in second.findings} == {
        (LAYER_B, "RUN pip install b")}
    # Everything but the layer is what a match with an empty memo gives.
    assert second == _fresh(shared_advisories, [_jinja2("2.10", LAYER_B, "RUN pip install b")])
    assert [dataclasses.replace(f, layer_digest=LAYER_B, layer_instruction="RUN pip install b")
            for f in first.findings] == list(second.findings)


def test_the_same_package_from_the_base_image_keeps_its_base_image_remediation(
    shared_advisories: Path,
) -> None:
    index = _index(shared_advisories)
    plain = match_inventory(None, [_jinja2("2.10", LAYER_A)], index)
    based = match_inventory(None, [_jinja2("2.10", LAYER_A)], index,
                            base_layer_digests={LAYER_A})
    assert len(index.package_memo) == 2
    assert plain.findings[0].remediation == (
        "Upgrade Jinja2 from 2.10 to 2.10.1 (fixed in PyPI)")
    assert based.findings[0].remediation == (
        "Rebuild on a newer base image: the package comes from the base layer "
        "(Jinja2 2.10.1 is fixed in PyPI)")
    assert based == _fresh(shared_advisories, [_jinja2("2.10", LAYER_A)],
                           base_layer_digests={LAYER_A})


def test_packages_no_record_names_are_not_remembered(shared_advisories: Path) -> None:
    index = _index(shared_advisories)
    unnamed = Package(type=PackageType.PYPI, name="no-such-package", version="1.0", purl="",
                      path="")
    result = match_inventory(None, [unnamed, _jinja2("3.1.6")], index)
    assert result.status is AssessmentStatus.HEALTHY
    assert result.findings == ()
    # jinja2 3.1.6 is named (and remembered with no findings); the other is not named at all.
    assert [key[2:4] for key in index.package_memo] == [("Jinja2", "3.1.6")]


def test_the_memo_is_emptied_at_its_bound_and_results_stay_the_same(
    shared_advisories: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(matching, "MAX_REMEMBERED_PACKAGES", 2)
    index = _index(shared_advisories)
    packages = [_jinja2(version) for version in ("2.9", "2.10", "2.11.2")]
    result = match_inventory(None, packages, index)
    # The third package found two remembered: the memo was emptied before it was added.
    assert [key[3] for key in index.package_memo] == ["2.11.2"]
    assert result == _fresh(shared_advisories, packages)
    assert match_inventory(None, packages, index) == result


def test_failed_comparisons_and_rejected_records_count_for_every_image() -> None:
    def record(advisory_id: str, fixed: object) -> dict[str, Any]:
        return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
            "package": {"ecosystem": "PyPI", "name": "some-package"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"},
                                                          {"fixed": fixed}]}]}]}

    index = compile_index([record("X-1", "2.0"), record("X-2", ["a", "b"])], built=BUILT)
    package = Package(type=PackageType.PYPI, name="some-package", version="not a version",
                      purl="", path="")
    warning = ("some-package not a version: not assessed against advisory record X-2, "
               "which could not be compiled (rejected)")
    expected = (AssessmentStatus.PARTIAL, (),
                f"1 version comparisons failed (unparsable versions); {warning}", (warning,))
    for _ in range(2):  # the second image meets the remembered package
        result = match_inventory(None, [package], index)
        assert (result.status, result.findings, result.reason, result.warnings) == expected
    assert len(index.package_memo) == 1
    # Two copies of the package in one image count twice, as they always did.
    twice = match_inventory(None, [package, dataclasses.replace(package, path="other")], index)
    assert twice.reason == (f"2 version comparisons failed (unparsable versions); {warning}; "
                            f"{warning}")


def _record(advisory_id: str, ecosystem: str, name: str) -> dict[str, Any]:
    return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.0"}]}]}]}


def test_whether_a_name_is_named_is_remembered_for_every_version(
    shared_advisories: Path,
) -> None:
    index = _index(shared_advisories)
    unnamed = [Package(type=PackageType.PYPI, name="no-such-package", version=version,
                       purl="", path="") for version in ("1.0", "2.0")]
    result = match_inventory(None, [*unnamed, _jinja2("2.10"), _jinja2("3.1.6")], index)
    assert [f.id for f in result.findings] == ["CVE-2019-10906", "CVE-2020-28493"]
    assert index.name_memo == {("PyPI", PackageType.PYPI, "no-such-package", "", ""): False,
                               ("PyPI", PackageType.PYPI, "Jinja2", "", ""): True}


def test_maven_packages_of_one_name_in_two_groups_are_told_apart() -> None:
    # Maven names are "group:artifact" and the group comes from the purl: the same artifact
    # name in a group no record names must not hide the named one.
    index = compile_index([_record("X-1", "Maven", "com.example:lib")], built=BUILT)
    packages = [Package(type=PackageType.MAVEN, name="lib", version="1.0",
                        purl=f"pkg:maven/{group}/lib@1.0", path="app.jar")
                for group in ("org.other", "com.example")]
    result = match_inventory(None, packages, index)
    assert [(f.id, f.purl) for f in result.findings] == [
        ("X-1", "pkg:maven/com.example/lib@1.0")]


def test_debian_packages_of_one_name_from_two_sources_are_told_apart() -> None:
    # Debian advisories name source packages: the same binary package built from a source no
    # record names must not hide the one built from a named source.
    index = compile_index([_record("X-2", "Debian:13", "openssl")], built=BUILT)
    packages = [Package(type=PackageType.DPKG, name="libssl3", version="3.0", purl="",
                        path="var/lib/dpkg/status", source_name=source, source_version="3.0")
                for source in ("other-source", "openssl")]
    result = match_inventory(OSInfo(id="debian", version_id="13"), packages, index)
    assert [(f.id, f.source_package) for f in result.findings] == [("X-2", "openssl")]


def test_the_name_memo_is_emptied_at_its_bound_and_results_stay_the_same(
    shared_advisories: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(matching, "MAX_REMEMBERED_NAMES", 1)
    index = _index(shared_advisories)
    packages = [Package(type=PackageType.PYPI, name="no-such-package", version="1.0",
                        purl="", path=""), _jinja2("2.10")]
    result = match_inventory(None, packages, index)
    assert list(index.name_memo) == [("PyPI", PackageType.PYPI, "Jinja2", "", "")]
    assert result == _fresh(shared_advisories, packages)
    assert match_inventory(None, packages, index) == result
