"""Findings documents encode a finding the matcher hands to many images once
(``findings._EncodedEntries``): the same bytes as encoding it each time, a copy in another
layer encoded on its own, and a bounded memo."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest
import zstandard

from scanning.matching import _in_layer
from scanning.model import Package, PackageType, PlatformFindings
from scanning.store import findings
from scanning.store.findings import encode_findings, finding_to_json
from tests.store.factories import make_finding

DIGEST = "sha256:" + "c" * 64


def _document(encoded: findings.EncodedFindings) -> bytes:
    return zstandard.ZstdDecompressor().decompress(encoded.document)


def _platform(*found: Any) -> tuple[PlatformFindings, ...]:
    return (PlatformFindings(platform="linux/amd64", findings=found),)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ids of the findings built into entries (a memo miss each)."""
    built: list[str] = []
    build = findings.finding_to_json

    def spied(finding: Any) -> dict[str, Any]:
        built.append(finding.id)
        return build(finding)

    monkeypatch.setattr(findings, "finding_to_json", spied)
    monkeypatch.setattr(findings, "_ENCODED", findings._EncodedEntries())
    return built


def test_a_finding_met_again_is_not_built_again_and_gives_the_same_bytes(
        counted: list[str]) -> None:
    shared, own = make_finding("CVE-2024-0001"), make_finding("CVE-2024-0002", "zlib")
    first = encode_findings(DIGEST, _platform(shared, own))
    second = encode_findings(DIGEST, _platform(shared))
    assert counted == ["CVE-2024-0001", "CVE-2024-0002"]
    assert _document(first) == orjson.dumps({"format": findings.FORMAT, "platforms": [
        {"platform": "linux/amd64", "manifest_digest": "",
         "findings": [finding_to_json(shared), finding_to_json(own)]}]})
    assert _document(second) == orjson.dumps({"format": findings.FORMAT, "platforms": [
        {"platform": "linux/amd64", "manifest_digest": "",
         "findings": [finding_to_json(shared)]}]})


def test_a_copy_in_another_layer_is_encoded_with_its_own_layer(counted: list[str]) -> None:
    shared = make_finding("CVE-2024-0001")
    package = Package(type=PackageType.DPKG, name="openssl", version="3.0.1-1", purl="",
                      path="", layer_digest="sha256:" + "b" * 64, layer_instruction="COPY")
    encode_findings(DIGEST, _platform(shared))
    moved = _in_layer(shared, package)
    document = orjson.loads(_document(encode_findings(DIGEST, _platform(moved))))
    entry = document["platforms"][0]["findings"][0]
    assert (counted, entry["layer_digest"], entry["layer_instruction"]) == (
        ["CVE-2024-0001", "CVE-2024-0001"], "sha256:" + "b" * 64, "COPY")


def test_a_copy_the_rules_disabled_is_encoded_with_its_rule(counted: list[str]) -> None:
    shared = make_finding("CVE-2024-0001")
    disabled = dataclasses.replace(shared, disabled_by="rule-1")
    document = orjson.loads(_document(encode_findings(DIGEST, (
        PlatformFindings(platform="linux/amd64", findings=(shared,)),
        PlatformFindings(platform="linux/arm64", findings=(disabled,))))))
    assert (counted, [platform["findings"][0]["disabled_by"]
                      for platform in document["platforms"]]) == (
        ["CVE-2024-0001", "CVE-2024-0001"], ["", "rule-1"])


def test_the_memo_is_emptied_when_full(counted: list[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(findings, "MAX_ENCODED_FINDINGS", 3)
    for number in range(5):
        encode_findings(DIGEST, _platform(make_finding(f"CVE-2024-000{number}")))
    assert [entry[0].id for entry in findings._ENCODED.entries.values()] == [
        "CVE-2024-0003", "CVE-2024-0004"]


def test_the_memo_is_emptied_when_its_entries_reach_the_byte_bound(
        counted: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    long = [dataclasses.replace(make_finding(f"CVE-2024-000{number}"), description="x" * 4000)
            for number in range(3)]
    size = len(orjson.dumps(finding_to_json(long[0])))
    monkeypatch.setattr(findings, "MAX_ENCODED_BYTES", 2 * size)
    for finding in long:
        encode_findings(DIGEST, _platform(finding))
    memo = findings._ENCODED
    assert ([entry[0].id for entry in memo.entries.values()], memo.size) == (
        ["CVE-2024-0002"], size)
