"""The Alpine secdb -> OSV adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanning.advisories.alpine_secdb import iter_secdb_osv, secdb_to_osv
from scanning.errors import AdvisoryError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SECDB = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "advisories"


def test_musl_fix_of_alpine_3_10_becomes_an_osv_range() -> None:
    folder = SECDB / "alpine-secdb-yaml" / "v3.10"
    if not folder.is_dir():
        pytest.skip(f"shared Alpine secdb not found at {folder}")
    musl = [r for r in iter_secdb_osv(folder) if r["affected"][0]["package"]["name"] == "musl"]
    assert musl == [
        {
            "id": f"ALPINE-v3.10-musl-{cve}",
            "aliases": [cve],
            "summary": f"{cve} in musl",
            "affected": [
                {
                    "package": {"ecosystem": "Alpine:v3.10", "name": "musl"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                    ],
                    "database_specific": {"source": "alpine-secdb", "repository": "main"},
                }
            ],
            "references": [
                {"type": "ADVISORY", "url": f"https://security.alpinelinux.org/vuln/{cve}"}
            ],
        }
        for fixed, cve in (("1.1.22-r3", "CVE-2019-14697"), ("1.1.15-r4", "CVE-2016-8859"))
    ]


def test_version_keys_stay_text_and_zero_key_is_never_affected() -> None:
    records = list(iter_secdb_osv(FIXTURES / "secdb-zero-key.yaml"))
    assert [(r["id"], r["affected"][0]["ranges"][0]["events"][1]["fixed"]) for r in records] == [
        ("ALPINE-v3.99-examplepkg-CVE-2099-0001", "2.10-r0"),
        ("ALPINE-v3.99-examplepkg-CVE-2099-0002", "2.10-r0"),
    ]


def test_document_without_release_is_an_error() -> None:
    with pytest.raises(AdvisoryError, match=r"'distroversion' must look like v3\.10"):
        list(secdb_to_osv(b"packages: []\n", "x.yaml"))


def test_malformed_yaml_is_an_error() -> None:
    with pytest.raises(AdvisoryError, match="not a valid Alpine secdb document"):
        list(secdb_to_osv(b"packages: [\n", "x.yaml"))
