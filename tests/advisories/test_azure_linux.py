"""The Azure Linux / CBL-Mariner OVAL -> OSV adapter.

Real data: Microsoft's OVAL files for CBL-Mariner 2.0 and Azure Linux 3.0 in
``../shared/testdata/advisories/native-feeds/azure-linux/`` (SOURCES.md there). The small
documents written by ``oval`` below are invented, in the real files' shape, for edge cases.
"""

from __future__ import annotations

import http.server
import lzma
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning.advisories.azure_linux import (
    download_oval,
    oval_ecosystem,
    parse_oval,
    read_oval_file,
)
from scanning.errors import AdvisoryError

FEEDS = "advisories/native-feeds/azure-linux"
NS = (
    'xmlns="http://oval.mitre.org/XMLSchema/oval-definitions-5" '
    'xmlns:oval="http://oval.mitre.org/XMLSchema/oval-common-5" '
    'xmlns:linux-def="http://oval.mitre.org/XMLSchema/oval-definitions-5#linux"'
)


def definition(number: int, cve: str, package: str, evr: str, *, operation: str = "less than",
               patchable: str = "true", severity: str = "High",
               dated: bool = True) -> tuple[str, str, str, str]:
    """(definition, test, object, state) elements of one invented definition."""
    prefix = "oval:com.microsoft.cbl-mariner"
    return (
        f'<definition class="vulnerability" id="{prefix}:def:{number}" version="1"><metadata>'
        f"<title>{cve} affecting package {package}</title>"
        f'<reference ref_id="{cve}" ref_url="https://nvd.nist.gov/vuln/detail/{cve}" '
        f'source="CVE"/><patchable>{patchable}</patchable>'
        + ("<advisory_date>2024-01-19T03:54:24Z</advisory_date>" if dated else "")
        + f"<severity>{severity}</severity>"
        f"<description>{cve} in {package}.</description></metadata>"
        f'<criteria operator="AND"><criterion test_ref="{prefix}:tst:{number}0"/></criteria>'
        "</definition>",
        f'<linux-def:rpminfo_test check="at least one" id="{prefix}:tst:{number}0" version="1">'
        f'<linux-def:object object_ref="{prefix}:obj:{number}1"/>'
        f'<linux-def:state state_ref="{prefix}:ste:{number}2"/></linux-def:rpminfo_test>',
        f'<linux-def:rpminfo_object id="{prefix}:obj:{number}1" version="1">'
        f"<linux-def:name>{package}</linux-def:name></linux-def:rpminfo_object>",
        f'<linux-def:rpminfo_state id="{prefix}:ste:{number}2" version="1">'
        f'<linux-def:evr datatype="evr_string" operation="{operation}">{evr}</linux-def:evr>'
        "</linux-def:rpminfo_state>",
    )


def oval(*definitions: tuple[str, str, str, str]) -> bytes:
    parts = list(zip(*definitions, strict=True)) if definitions else [(), (), (), ()]
    return (
        f"<oval_definitions {NS}><generator><oval:timestamp>2024-01-22T13:02:00Z"
        "</oval:timestamp></generator>"
        f"<definitions>{''.join(parts[0])}</definitions><tests>{''.join(parts[1])}</tests>"
        f"<objects>{''.join(parts[2])}</objects><states>{''.join(parts[3])}</states>"
        "</oval_definitions>"
    ).encode()


def convert(data: bytes) -> tuple[list[dict[str, object]], list[tuple[str, str]]]:
    result = parse_oval(data, "test.xml", ecosystem="Mariner:2.0", id_prefix="MARINER-2.0")
    return list(result.records), list(result.rejected)


def test_real_mariner_2_fixed_definition_becomes_a_fixed_range(testdata: Path) -> None:
    result = read_oval_file(testdata / FEEDS / "cbl-mariner-2.0-oval.xml.xz")
    record = next(r for r in result.records if r["id"] == "MARINER-2.0-zlib-CVE-2022-37434")
    assert record == {
        "id": "MARINER-2.0-zlib-CVE-2022-37434",
        "aliases": ["CVE-2022-37434"],
        "summary": record["summary"],
        "details": record["details"],
        "published": record["published"],
        "modified": record["modified"],
        "affected": [{
            "package": {"ecosystem": "Mariner:2.0", "name": "zlib"},
            "ranges": [{"type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": "1.2.12-2.cm2"}]}],
            "database_specific": {"source": "azure-linux-oval",
                                  "definition": record["affected"][0]["database_specific"][
                                      "definition"],
                                  "patchable": "true", "severity": "Critical"},
        }],
        "references": [{"type": "ADVISORY",
                        "url": "https://nvd.nist.gov/vuln/detail/CVE-2022-37434"}],
    }


def test_real_mariner_2_counts_and_rejections(testdata: Path) -> None:
    # 2,436 definitions: 132 "Not Applicable", 8 malformed EVRs, and 14 (package, CVE) pairs
    # published twice (merged into one record each): 2,436 - 132 - 8 - 14 = 2,282 records.
    result = read_oval_file(testdata / FEEDS / "cbl-mariner-2.0-oval.xml.xz")
    assert (result.ecosystem, len(result.records), [reason for _, reason in result.rejected]) == (
        "Mariner:2.0",
        2282,
        [
            "CVE-2019-14249 (oval:com.microsoft.cbl-mariner:def:33329): "
            "evr '0:0.9.0.cm2' is not a valid rpm EVR",
            "CVE-2020-28163 (oval:com.microsoft.cbl-mariner:def:33328): "
            "evr '0:0.9.0.cm2' is not a valid rpm EVR",
            "CVE-2020-27545 (oval:com.microsoft.cbl-mariner:def:33327): "
            "evr '0:0.9.0.cm2' is not a valid rpm EVR",
            "CVE-2016-8681 (oval:com.microsoft.cbl-mariner:def:33326): "
            "evr '0:0.9.0.cm2' is not a valid rpm EVR",
            "CVE-2023-48795 (oval:com.microsoft.cbl-mariner:def:32280): "
            "evr '0:null.cm2' is not a valid rpm EVR",
            "CVE-2023-7008 (oval:com.microsoft.cbl-mariner:def:32270): "
            "evr '0:123.cm2' is not a valid rpm EVR",
            "CVE-2023-48795 (oval:com.microsoft.cbl-mariner:def:32259): "
            "evr '0:null.cm2' is not a valid rpm EVR",
            "CVE-2023-39323 (oval:com.microsoft.cbl-mariner:def:31107): "
            "evr '0: 1.20.10-1.cm2' is not a valid rpm EVR",
        ],
    )


def test_real_azure_linux_3_rejections_name_the_record(testdata: Path) -> None:
    result = read_oval_file(testdata / FEEDS / "azurelinux-3.0-oval.xml.xz")
    assert (result.ecosystem, len(result.records), result.rejected) == (
        "Azure Linux:3.0",
        1217,
        (
            ("AZURELINUX-3.0-emacs-CVE-2024-30204",
             "CVE-2024-30204 (oval:com.microsoft.azurelinux:def:37106): "
             "evr '0:29.3.azl3' is not a valid rpm EVR"),
            ("AZURELINUX-3.0-golang-CVE-2023-39323",
             "CVE-2023-39323 (oval:com.microsoft.azurelinux:def:34752): "
             "evr '0: 1.20.10-1.azl3' is not a valid rpm EVR"),
            ("AZURELINUX-3.0-golang-CVE-2022-41717",
             "CVE-2022-41717 (oval:com.microsoft.azurelinux:def:34750): "
             "evr '0:1.17.13-2,1.18.8-2,1.21.6-1.azl3' is not a valid rpm EVR"),
        ),
    )


def test_less_than_or_equal_is_affected_up_to_that_version_with_no_fix() -> None:
    records, _ = convert(oval(definition(1, "CVE-2022-0529", "unzip", "0:6.0-19.cm2",
                                         operation="less than or equal", patchable="false",
                                         severity="Medium")))
    assert records[0]["affected"] == [{
        "package": {"ecosystem": "Mariner:2.0", "name": "unzip"},
        "ranges": [{"type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"last_affected": "6.0-19.cm2"}]}],
        "database_specific": {"source": "azure-linux-oval",
                              "definition": "oval:com.microsoft.cbl-mariner:def:1",
                              "patchable": "false", "severity": "Medium"},
    }]


def test_not_applicable_definition_gives_no_record() -> None:
    assert convert(oval(definition(1, "CVE-2020-8908", "guava", "0:25.0-5.cm2",
                                   patchable="Not Applicable"))) == ([], [])


def test_dates_come_from_the_definition_else_the_file() -> None:
    records, _ = convert(oval(definition(1, "CVE-2023-5", "curl", "0:8.5.0-1.cm2"),
                              definition(2, "CVE-2023-6", "curl", "0:8.5.0-1.cm2", dated=False)))
    assert [(r["id"], r["published"], r["modified"]) for r in records] == [
        ("MARINER-2.0-curl-CVE-2023-5", "2024-01-19T03:54:24Z", "2024-01-19T03:54:24Z"),
        ("MARINER-2.0-curl-CVE-2023-6", "", "2024-01-22T13:02:00Z"),
    ]


def test_nonzero_epoch_is_kept_in_the_fixed_version() -> None:
    records, _ = convert(oval(definition(1, "CVE-2023-1", "vim", "2:9.0.2112-1.cm2")))
    assert records[0]["affected"][0]["ranges"][0]["events"][1] == {"fixed": "2:9.0.2112-1.cm2"}


def test_two_definitions_for_one_package_and_cve_are_one_record() -> None:
    records, _ = convert(oval(definition(1, "CVE-2022-2989", "podman", "0:4.1.1-9.cm2"),
                              definition(2, "CVE-2022-2989", "podman", "0:4.1.1-10.cm2")))
    assert [(r["id"], [a["ranges"][0]["events"][1] for a in r["affected"]])  # type: ignore[index,union-attr]
            for r in records] == [
        ("MARINER-2.0-podman-CVE-2022-2989", [{"fixed": "4.1.1-9.cm2"}, {"fixed": "4.1.1-10.cm2"}])
    ]


def test_dangling_test_reference_is_rejected() -> None:
    broken = definition(1, "CVE-2023-2", "curl", "0:8.5.0-1.cm2")
    data = oval((broken[0], "", broken[2], broken[3]))
    assert convert(data) == ([], [(
        "oval:com.microsoft.cbl-mariner:def:1",
        "CVE-2023-2 (oval:com.microsoft.cbl-mariner:def:1): test "
        "'oval:com.microsoft.cbl-mariner:tst:10' is missing",
    )])


def test_unsupported_operation_is_rejected() -> None:
    records, rejected = convert(oval(definition(1, "CVE-2023-3", "curl", "0:8.5.0-1.cm2",
                                                operation="greater than")))
    assert (records, rejected) == ([], [(
        "MARINER-2.0-curl-CVE-2023-3",
        "CVE-2023-3 (oval:com.microsoft.cbl-mariner:def:1): evr operation 'greater than' is "
        "not supported",
    )])


def test_truncated_xml_names_file_line_and_column() -> None:
    with pytest.raises(AdvisoryError) as raised:
        parse_oval(b"<oval_definitions>\n<definitions>", "feed.xml", ecosystem="Mariner:2.0",
                   id_prefix="MARINER-2.0")
    assert str(raised.value) == (
        "feed.xml: not valid XML at line 2, column 13: no element found: line 2, column 13"
    )


def test_xml_that_is_not_oval_is_an_error() -> None:
    with pytest.raises(AdvisoryError) as raised:
        parse_oval(b"<html/>", "feed.xml", ecosystem="Mariner:2.0", id_prefix="MARINER-2.0")
    assert str(raised.value) == "feed.xml: not an OVAL definitions document (root 'html')"


def test_release_comes_from_the_upstream_file_name() -> None:
    assert [oval_ecosystem(n) for n in ("cbl-mariner-1.0-oval.xml", "cbl-mariner-2.0-oval.xml.xz",
                                        "azurelinux-3.0-oval.xml")] == [
        ("Mariner:1.0", "MARINER-1.0"), ("Mariner:2.0", "MARINER-2.0"),
        ("Azure Linux:3.0", "AZURELINUX-3.0"),
    ]


def test_file_name_without_a_release_is_an_error() -> None:
    with pytest.raises(AdvisoryError, match=r"^oval\.xml: cannot tell the release"):
        oval_ecosystem("oval.xml")


def test_plain_and_xz_files_read_alike(tmp_path: Path) -> None:
    data = oval(definition(1, "CVE-2023-4", "curl", "0:8.5.0-1.cm2"))
    (tmp_path / "cbl-mariner-2.0-oval.xml").write_bytes(data)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "cbl-mariner-2.0-oval.xml.xz").write_bytes(lzma.compress(data))
    plain = read_oval_file(tmp_path / "cbl-mariner-2.0-oval.xml")
    compressed = read_oval_file(tmp_path / "x" / "cbl-mariner-2.0-oval.xml.xz")
    assert (plain.records, len(plain.records)) == (compressed.records, 1)


def _mirror(folder: Path) -> Path:
    folder.mkdir()
    for number, name in enumerate(("cbl-mariner-1.0-oval.xml", "cbl-mariner-2.0-oval.xml",
                                   "azurelinux-3.0-oval.xml")):
        (folder / name).write_bytes(oval(definition(number, f"CVE-2024-{number}", "curl",
                                                    "0:8.5.0-1.cm2")))
    return folder


def test_download_reads_every_release_from_a_file_url(tmp_path: Path) -> None:
    results = download_oval(tmp_path / "cache", base=_mirror(tmp_path / "mirror").as_uri())
    assert [(r.ecosystem, [rec["id"] for rec in r.records]) for r in results] == [
        ("Mariner:1.0", ["MARINER-1.0-curl-CVE-2024-0"]),
        ("Mariner:2.0", ["MARINER-2.0-curl-CVE-2024-1"]),
        ("Azure Linux:3.0", ["AZURELINUX-3.0-curl-CVE-2024-2"]),
    ]


@pytest.fixture
def http_mirror(tmp_path: Path) -> Iterator[str]:
    folder = _mirror(tmp_path / "served")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(folder), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_over_http_writes_the_files(tmp_path: Path, http_mirror: str) -> None:
    download_oval(tmp_path / "cache", base=http_mirror)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [
        "azurelinux-3.0-oval.xml", "cbl-mariner-1.0-oval.xml", "cbl-mariner-2.0-oval.xml"
    ]


def test_corrupt_download_keeps_the_previous_copy(tmp_path: Path) -> None:
    mirror = _mirror(tmp_path / "mirror")
    cache = tmp_path / "cache"
    download_oval(cache, base=mirror.as_uri())
    before = (cache / "cbl-mariner-2.0-oval.xml").read_bytes()
    (mirror / "cbl-mariner-2.0-oval.xml").write_bytes(b"<oval_definitions")
    with pytest.raises(AdvisoryError, match="not valid XML at line 1"):
        download_oval(cache, base=mirror.as_uri())
    assert ((cache / "cbl-mariner-2.0-oval.xml").read_bytes() == before,
            (cache / "cbl-mariner-2.0-oval.xml.part").exists()) == (True, False)


def test_entity_expansion_bomb_is_refused() -> None:
    entities = "".join(
        f'<!ENTITY lol{n} "{("&lol%s;" % ("" if n == 1 else n - 1)) * 10}">' for n in range(1, 10)
    )
    bomb = (f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">{entities}]>'
            "<oval_definitions>&lol9;</oval_definitions>").encode()
    with pytest.raises(AdvisoryError, match="limit on input amplification factor"):
        parse_oval(bomb, "bomb.xml", ecosystem="Mariner:2.0", id_prefix="MARINER-2.0")


def test_external_entity_is_not_read() -> None:
    data = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>'
            b"<oval_definitions>&ext;</oval_definitions>")
    with pytest.raises(AdvisoryError, match="undefined entity &ext;"):
        parse_oval(data, "ext.xml", ecosystem="Mariner:2.0", id_prefix="MARINER-2.0")
