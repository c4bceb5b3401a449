"""The notification summary read from a row's findings keys (``summary_from_key_data``), as
the weekly rescan reads it for every image it gives new findings: the same summary as
``notify.summarise`` of the findings and as ``summary_from_keys(decode_keys(...))``."""

from __future__ import annotations

import zlib

import orjson
import pytest
import zstandard

from scanning.errors import StoreError
from scanning.model import AssessmentStatus, PlatformFindings
from scanning.notify import summarise
from scanning.store.findings import (
    decode_keys,
    encode_findings,
    summary_from_key_data,
    summary_from_keys,
)
from tests.store.factories import make_finding

DIGEST = "sha256:" + "1" * 64
FINDINGS = (
    make_finding("CVE-2024-0001", "openssl", aliases=("DSA-5000-1",)),
    make_finding("CVE-2024-0002", "zlib", version="1:1.2.13"),
    make_finding("CVE-2024-0003", "zlib", version="1:1.2.13", disabled_by="rule-1"),
    make_finding("CVE-2024-0004", "curl", source_package="curl-src"),
)


def test_the_summary_equals_the_findings_own_and_the_decoded_keys() -> None:
    arm = (make_finding("CVE-2024-0001", "openssl", aliases=("DSA-5000-1",)),
           make_finding("CVE-2024-0005", "bash"))
    encoded = encode_findings(DIGEST, (PlatformFindings(platform="linux/amd64", findings=FINDINGS),
                                       PlatformFindings(platform="linux/arm64", findings=arm)))
    summary = summary_from_key_data(AssessmentStatus.UNHEALTHY, encoded.keys, "keys")
    assert summary.active_finding_keys == frozenset({
        "CVE-2024-0001|openssl|3.0.1-1", "CVE-2024-0002|zlib|1:1.2.13",
        "CVE-2024-0004|curl|3.0.1-1", "CVE-2024-0005|bash|3.0.1-1"})
    assert summary == summarise(AssessmentStatus.UNHEALTHY, FINDINGS + arm)
    assert summary == summary_from_keys(AssessmentStatus.UNHEALTHY,
                                        decode_keys(encoded.keys, "keys"))


def _stored(value: object) -> bytes:
    return zstandard.ZstdCompressor().compress(orjson.dumps(value))


@pytest.mark.parametrize(("data", "message"), [
    (_stored({"abcdefghi": 1}), "keys of x is malformed: not a list"),
    (_stored(["abcdefghi"]), "keys of x is malformed: an entry is not nine fields"),
    (_stored([[0, "CVE-1", [], "p", "p", "1", 3, "fixed"]]),
     "keys of x is malformed: an entry is not nine fields"),
    (zlib.compress(b"[]"), "keys of x"),
])
def test_malformed_keys_are_a_store_error(data: bytes, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        summary_from_key_data(AssessmentStatus.UNHEALTHY, data, "keys of x")
