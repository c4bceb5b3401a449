"""What a re-match depends on: the lookups of an inventory, their hit signatures, and whether
an index change can change them (the weekly rescan's test without the inventory)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.index import (
    AdvisoryIndex,
    IndexChange,
    compile_index,
    diff_key_fingerprints,
)
from scanning.advisories.index import key_fingerprints as fingerprints_of
from scanning.advisories.osv import iter_records
from scanning.analyzers import analyzer_set_version
from scanning.inventory import ImageInventory, InventoryStatus
from scanning.matching import (
    lookup_signature,
    lookups_affected,
    named_package_entries,
    package_lookups,
    unchanged_signatures,
)
from scanning.model import OSInfo, Package, PackageType, Platform, ScanTrigger
from scanning.service.evaluation import (
    evaluate,
    inventory_digest,
    inventory_document,
    parse_inventories,
)
from scanning.service.payloads import ScanRequest
from scanning.store.match_keys import read_match_keys

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


# ------------------------------------------------------------------ signatures kept across a change

SHARED_PYPA = ("jinja2", "aiohttp", "django", "requests", "pillow", "urllib3")


def _real_records(shared_advisories: Path) -> list[dict[str, Any]]:
    pypa = shared_advisories / "osv" / "pypi-pypa-advisory-database"
    records = [record for name in SHARED_PYPA for record in iter_records(pypa / name)]
    return [*iter_secdb_osv(shared_advisories / "alpine-secdb-yaml" / "v3.11"), *records]


def _real_inventory(records: list[dict[str, Any]]) -> tuple[OSInfo, tuple[Package, ...]]:
    """Every package the records name, at every version their ranges mention (so some are
    affected and some fixed), plus packages no record names."""
    packages: dict[tuple[str, str, str], Package] = {}
    for record in records:
        for affected in record.get("affected", []):
            ecosystem = affected["package"]["ecosystem"]
            kind = PackageType.APK if ecosystem.startswith("Alpine") else PackageType.PYPI
            name = affected["package"]["name"]
            for span in affected.get("ranges", []):
                for event in span.get("events", []):
                    for version in (event.get("introduced"), event.get("fixed")):
                        if version and version != "0":
                            packages[(kind.value, name, version)] = Package(
                                type=kind, name=name, version=version, purl="", path="",
                                source_name=name if kind is PackageType.APK else "")
    unnamed = (Package(type=PackageType.PYPI, name=f"unnamed-{n}", version="1.0", purl="",
                       path="") for n in range(20))
    return (OSInfo(id="alpine", version_id="3.11.5"),
            (*sorted(packages.values(), key=lambda p: (p.type.value, p.name, p.version)),
             *unnamed))


def _changed(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """An older index (every 10th record missing, every 7th with an older ``modified`` and
    no aliases) and today's (all of them)."""
    older = [{**record, "modified": "2000-01-01T00:00:00Z", "aliases": []}
             if number % 7 == 3 else record
             for number, record in enumerate(records) if number % 10 != 5]
    return older, records


def _every_signature(os_info: OSInfo, packages: tuple[Package, ...],
            index: AdvisoryIndex) -> dict[tuple[str, str, str], str]:
    return {lookup: lookup_signature(index, lookup)
            for lookup in package_lookups(os_info, packages)}


def test_kept_signatures_are_those_a_full_recompute_gives(shared_advisories: Path) -> None:
    """Real PyPA and Alpine records: the signatures a rescan keeps from the older index, with
    the touched ones recomputed, are exactly today's signatures of every lookup."""
    older_records, records = _changed(_real_records(shared_advisories))
    os_info, packages = _real_inventory(records)
    older, today = compile_index(older_records), compile_index(records)
    before = _every_signature(os_info, packages, older)
    change = diff_key_fingerprints(fingerprints_of(older), fingerprints_of(today))
    kept = unchanged_signatures(before.items(), change, today)
    full = _every_signature(os_info, packages, compile_index(records))
    assert 0 < len(kept) < len(before)
    assert kept == {lookup: full[lookup] for lookup in kept}
    assert {lookup for lookup in before if before[lookup] != full[lookup]} <= (
        set(before) - set(kept))


def test_rematch_with_kept_signatures_equals_a_full_rematch(shared_advisories: Path) -> None:
    """The verdict and the stored match keys of a re-match that keeps the untouched
    signatures are byte for byte those of a re-match that computes them all."""
    older_records, records = _changed(_real_records(shared_advisories))
    os_info, packages = _real_inventory(records)
    older = compile_index(older_records)
    inventory = ImageInventory(
        reference="myacr.azurecr.io/app@sha256:" + "a" * 64, image_digest="sha256:" + "a" * 64,
        manifest_digest="sha256:" + "a" * 64, config_digest="sha256:" + "b" * 64,
        platform=Platform(os="linux", architecture="amd64"),
        analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
        os=os_info, packages=packages, layers=())
    request = ScanRequest(registry="myacr.azurecr.io", repository="app",
                          digest=inventory.image_digest, trigger=ScanTrigger.RESCAN,
                          requested_at=BUILT.isoformat())
    before = evaluate((inventory,), request=request, rules=(), index=older, moment=BUILT)
    today = compile_index(records)
    change = diff_key_fingerprints(fingerprints_of(older), fingerprints_of(today))
    keys = read_match_keys(before.match_keys)
    assert keys is not None
    signed = keys.signed
    kept = evaluate((inventory,), request=request, rules=(), index=today, moment=BUILT,
                    signatures=unchanged_signatures(signed, change, today))
    full = evaluate((inventory,), request=request, rules=(), index=compile_index(records),
                    moment=BUILT)
    assert full.verdict.findings  # the records do affect some of the packages
    assert kept.verdict == full.verdict
    assert kept.match_keys == full.match_keys != before.match_keys


def test_no_signature_is_kept_for_an_ecosystem_that_appeared_or_went() -> None:
    signed = [(("PyPI", "some-package", "1.5"), ""), (("Go", "example.com/mod", "1.2.3"), "")]
    index = compile_index([_record("PYSEC-1", "other", "2.0")])
    change = IndexChange(ecosystems=frozenset({"Go"}))
    assert unchanged_signatures(signed, change, index) == {("PyPI", "some-package", "1.5"): ""}


def _red_hat_record(advisory_id: str, ecosystem: str, fixed: str) -> dict[str, Any]:
    return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": ecosystem, "name": "openssl"},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}],
    }]}


def test_a_key_change_under_a_prefix_ecosystem_reaches_its_wildcard_lookup() -> None:
    # Keys only change (no ecosystem appears or goes): the wildcard lookup of a RHEL image is
    # checked against every ecosystem under its prefix, as when ecosystems change too.
    appstream = "Red Hat:enterprise_linux:9::appstream"
    baseos = "Red Hat:enterprise_linux:9::baseos"
    old = [_red_hat_record("RHSA-1", appstream, "1:3.0.7-1.el9"),
           _red_hat_record("RHSA-2", baseos, "1:3.0.1-1.el9")]
    new = [*old, _red_hat_record("RHSA-3", baseos, "1:3.0.7-30.el9")]
    change = _change(old, new)
    assert (change.keys, change.ecosystems) == (frozenset({(baseos, "openssl")}), frozenset())
    before, today = compile_index(old, built=BUILT), compile_index(new, built=BUILT)
    wildcard = ("Red Hat:enterprise_linux:9:*", "openssl", "1:3.0.7-24.el9")
    untouched = ("PyPI", "some-package", "1.5")
    signed = [(wildcard, lookup_signature(before, wildcard)), (untouched, "")]
    assert lookups_affected(signed, change, today) is True
    assert unchanged_signatures(signed, change, today) == {untouched: ""}
    # A version the new record does not hit: the key changed, its hits did not.
    fixed = ("Red Hat:enterprise_linux:9:*", "openssl", "1:3.0.7-31.el9")
    assert lookups_affected([(fixed, lookup_signature(before, fixed))], change, today) is False


# ------------------------------------------------- a re-match that takes its lookups from the keys

def _document_rematch(inventory: ImageInventory, older: AdvisoryIndex,
                      today: AdvisoryIndex) -> tuple[Any, Any, int, int]:
    """The lean re-match (packages no record of ``today`` names left out, lookups from the
    keys of the first assessment of the same document) and the full one, with the package
    counts each built."""
    document = inventory_document(inventory.image_digest, (inventory,))
    digest = inventory_digest(document)
    request = ScanRequest(registry="myacr.azurecr.io", repository="app",
                          digest=inventory.image_digest, trigger=ScanTrigger.RESCAN,
                          requested_at=BUILT.isoformat())
    parsed = parse_inventories(document, request.registry, request.digest)
    assert parsed is not None
    before = evaluate(parsed, request=request, rules=(), index=older, moment=BUILT,
                      inventory=digest)
    keys = read_match_keys(before.match_keys)
    assert keys is not None and keys.inventory == digest
    change = diff_key_fingerprints(fingerprints_of(older), fingerprints_of(today))
    kept = unchanged_signatures(keys.signed, change, today)
    # The full re-match first: it fills today's name memo, as earlier images of a chunk do.
    full = evaluate(parsed, request=request, rules=(), index=today, moment=BUILT,
                    signatures=kept, inventory=digest)
    lean_inventories = parse_inventories(document, request.registry, request.digest,
                                         named_in=today)
    assert lean_inventories is not None
    lean = evaluate(lean_inventories, request=request, rules=(), index=today, moment=BUILT,
                    signatures=kept, inventory=digest,
                    lookups=[lookup for lookup, _ in keys.signed])
    return lean, full, len(lean_inventories[0].packages), len(parsed[0].packages)


def _inventory(os_info: OSInfo | None, packages: tuple[Package, ...]) -> ImageInventory:
    return ImageInventory(
        reference="myacr.azurecr.io/app@sha256:" + "a" * 64, image_digest="sha256:" + "a" * 64,
        manifest_digest="sha256:" + "a" * 64, config_digest="sha256:" + "b" * 64,
        platform=Platform(os="linux", architecture="amd64"),
        analyzer_set_version=analyzer_set_version(), status=InventoryStatus.COMPLETE,
        os=os_info, packages=packages, layers=())


def test_a_rematch_with_lookups_from_the_keys_equals_a_full_rematch(
        shared_advisories: Path) -> None:
    """Real PyPA and Alpine records, plus packages of an ecosystem the index lacks (npm) and
    of a Maven coordinate: building only the packages today's index names and taking the
    lookups from the keys gives the verdict and the match keys, byte for byte, of building
    them all."""
    older_records, records = _changed(_real_records(shared_advisories))
    os_info, packages = _real_inventory(records)
    extra = (Package(type=PackageType.NPM, name="left-pad", version="1.0.0", purl="",
                     path="node_modules/left-pad"),
             Package(type=PackageType.MAVEN, name="log4j-core", version="2.14.1",
                     purl="pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", path="app.jar"))
    lean, full, built, every = _document_rematch(
        _inventory(os_info, (*packages, *extra)), compile_index(older_records),
        compile_index(records))
    assert full.verdict.findings
    assert "the advisory index has no records for npm" in full.verdict.reason
    assert (lean.verdict, lean.match_keys) == (full.verdict, full.match_keys)
    assert built < every
    assert every - built >= 20  # at least the 20 unnamed PyPI packages were not built


def test_a_lean_rematch_whose_packages_no_record_names_keeps_one_so_the_image_has_packages(
        ) -> None:
    packages = tuple(Package(type=PackageType.PYPI, name=f"unnamed-{n}", version="1.0",
                             purl="", path="") for n in range(3))
    records = [_record("PYSEC-1", "requests", "2.0")]
    lean, full, built, every = _document_rematch(
        _inventory(None, packages), compile_index(records), compile_index(records))
    assert (full.verdict.status.value, built, every) == ("healthy", 1, 3)
    assert (lean.verdict, lean.match_keys) == (full.verdict, full.match_keys)


def test_os_packages_whose_os_the_index_lacks_are_all_built() -> None:
    # Debian packages against a PyPI-only index: the gap needs them, and none is matched.
    packages = tuple(Package(type=PackageType.DPKG, name=f"lib{n}", version="1.0", purl="",
                             path="var/lib/dpkg/status") for n in range(4))
    records = [_record("PYSEC-1", "requests", "2.0")]
    lean, full, built, every = _document_rematch(
        _inventory(OSInfo(id="debian", version_id="12"), packages), compile_index(records),
        compile_index(records))
    assert (full.verdict.status.value, built, every) == ("unsupported", 4, 4)
    assert (lean.verdict, lean.match_keys) == (full.verdict, full.match_keys)


def test_a_lean_inventory_lacking_a_required_package_field_is_malformed() -> None:
    index = compile_index([_record("PYSEC-1", "requests", "2.0")])
    inventory = _inventory(None, (Package(type=PackageType.PYPI, name="unnamed", version="1.0",
                                          purl="", path=""),))
    document = orjson.loads(inventory_document(inventory.image_digest, (inventory,)))
    del document["platforms"][0]["packages"][0]["version"]
    assert parse_inventories(orjson.dumps(document), "r.io", inventory.image_digest,
                             named_in=index) is None


def _named_record(advisory_id: str, ecosystem: str, name: str) -> dict[str, Any]:
    return {"id": advisory_id, "modified": "2024-01-01T00:00:00Z", "affected": [{
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "9.0"}]}],
    }]}


def test_with_the_name_memo_filled_every_unnamed_package_of_every_type_is_left_out() -> None:
    """The lean read's inline name key is match_inventory's: a package whose key
    differed would miss the memo and be kept, so every unnamed package going shows they
    agree, for the fields each type adds (an APK source, a Maven purl)."""
    index = compile_index([
        _named_record(f"X-{number}", ecosystem, "named")
        for number, ecosystem in enumerate(("Alpine:v3.19", "PyPI", "npm", "Go", "Maven",
                                            "NuGet"))])
    unnamed = (
        Package(type=PackageType.APK, name="libfoo", version="1.0-r0", purl="", path="",
                source_name="foo"),
        Package(type=PackageType.PYPI, name="Un_Named", version="1.0", purl="", path=""),
        Package(type=PackageType.NPM, name="unnamed", version="1.0.0", purl="", path=""),
        Package(type=PackageType.GOLANG, name="example.com/unnamed", version="v1.0.0",
                purl="", path=""),
        Package(type=PackageType.MAVEN, name="unnamed", version="1.0",
                purl="pkg:maven/org.example/unnamed@1.0", path=""),
        Package(type=PackageType.NUGET, name="Unnamed", version="1.0.0", purl="", path=""),
    )
    named = Package(type=PackageType.PYPI, name="named", version="1.0", purl="", path="")
    inventory = _inventory(ALPINE, (*unnamed, named))
    request = ScanRequest(registry="r.io", repository="app", digest=inventory.image_digest,
                          trigger=ScanTrigger.RESCAN, requested_at=BUILT.isoformat())
    full = evaluate((inventory,), request=request, rules=(), index=index, moment=BUILT)
    entries = orjson.loads(inventory_document(inventory.image_digest, (inventory,)))[
        "platforms"][0]["packages"]
    assert [finding.package for finding in full.verdict.findings] == ["named"]
    assert named_package_entries(ALPINE, entries, index) == [entries[-1]]
