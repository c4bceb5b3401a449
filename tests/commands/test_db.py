"""`python -m scanning db …` end to end through the CLI."""

from __future__ import annotations

import lzma
import zipfile
from pathlib import Path

import pytest

from scanning.advisories.index import load_index
from scanning.cli import main

FIXTURE_RECORDS = Path(__file__).resolve().parents[1] / "matching" / "fixtures" / "osv"
SECDB_FIXTURE = Path(__file__).resolve().parents[1] / "advisories" / "fixtures"


def test_build_compiles_osv_and_secdb_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.idx"
    code = main(
        [
            "db",
            "build",
            "--osv",
            str(FIXTURE_RECORDS),
            "--alpine-secdb",
            str(SECDB_FIXTURE / "secdb-zero-key.yaml"),
            "--out",
            str(out),
        ]
    )
    index = load_index(out)
    assert (code, index.counts, capsys.readouterr().out.splitlines()[1:]) == (
        0,
        {
            "Alpine": 2,
            "AlmaLinux": 1,
            "Debian": 6,
            "Go": 2,
            "Maven": 1,
            "PyPI": 1,
            "Rocky Linux": 1,
            "Ubuntu": 2,
            "npm": 1,
        },
        [
            "  AlmaLinux: 1",
            "  Alpine: 2",
            "  Debian: 6",
            "  Go: 2",
            "  Maven: 1",
            "  PyPI: 1",
            "  Rocky Linux: 1",
            "  Ubuntu: 2",
            "  npm: 1",
        ],
    )


def test_build_without_sources_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["db", "build", "--out", str(tmp_path / "x.idx")])
    assert (code, capsys.readouterr().err) == (
        2,
        "error: db build needs at least one --osv, --alpine-secdb or --azure-linux-oval source\n",
    )


def _mirror(tmp_path: Path) -> Path:
    mirror = tmp_path / "mirror"
    for ecosystem in ("Go", "npm"):
        (mirror / ecosystem).mkdir(parents=True)
        with zipfile.ZipFile(mirror / ecosystem / "all.zip", "w") as writer:
            for record in sorted(FIXTURE_RECORDS.glob("*.json")):
                writer.write(record, record.name)
    return mirror


def test_update_downloads_from_the_configured_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ADVISORY_FEED_URL", _mirror(tmp_path).as_uri())
    out = tmp_path / "index" / "index.idx"
    code = main(["db", "update", "--out", str(out), "--ecosystem", "Go", "--ecosystem", "npm"])
    assert (code, load_index(out).counts) == (0, {"Go": 2, "npm": 1})


def test_failed_update_keeps_the_previous_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ADVISORY_FEED_URL", _mirror(tmp_path).as_uri())
    out = tmp_path / "index.idx"
    main(["db", "update", "--out", str(out), "--ecosystem", "Go"])
    before = out.read_bytes()
    code = main(["db", "update", "--out", str(out), "--ecosystem", "Go", "--ecosystem", "PyPI"])
    assert (
        code,
        out.read_bytes() == before,
        "PyPI/all.zip: no such file" in capsys.readouterr().err,
    ) == (2, True, True)


def test_info_prints_build_time_and_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.idx"
    main(["db", "build", "--osv", str(FIXTURE_RECORDS), "--ecosystem", "Go", "--out", str(out)])
    capsys.readouterr()
    code = main(["db", "info", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert (code, lines[0].endswith(", 2 advisories"), lines[1:]) == (0, True, ["  Go: 2"])


PYPA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "advisories" / "osv" \
    / "pypi-pypa-advisory-database"
REJECTED_LINES = [
    "rejected records (packages they name are reported as not assessed):",
    "  PYSEC-2019-125: affected[0].ranges[0].events[1].fixed: not a PEP 440 version: "
    "'2019-09-12'",
]


def _steam() -> Path:
    if not PYPA.is_dir():
        pytest.skip(f"shared advisories not found at {PYPA}")
    return PYPA / "steam"


def test_build_lists_rejected_records_and_succeeds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.idx"
    code = main(["db", "build", "--osv", str(_steam()), "--out", str(out)])
    assert (code, capsys.readouterr().out.splitlines()[1:]) == (
        0, ["  PyPI: 0 (1 rejected)", *REJECTED_LINES]
    )


def test_strict_build_exits_1_when_a_record_is_rejected(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.idx"
    code = main(["db", "build", "--strict", "--osv", str(_steam()), "--out", str(out)])
    assert (code, capsys.readouterr().out.splitlines()[3:], load_index(out).rejected_counts()) == (
        1, REJECTED_LINES[1:], {"PyPI": 1}
    )


def test_info_shows_rejected_counts_per_ecosystem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "index.idx"
    main(["db", "build", "--osv", str(_steam()), "--osv", str(FIXTURE_RECORDS),
          "--ecosystem", "PyPI", "--out", str(out)])
    capsys.readouterr()
    code = main(["db", "info", str(out)])
    lines = capsys.readouterr().out.splitlines()
    assert (code, lines[0].endswith(", 1 advisories, 1 rejected"), lines[1:]) == (
        0, True, ["  PyPI: 1 (1 rejected)"]
    )


def test_update_lists_the_rejected_records_of_the_downloaded_feeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    steam = _steam()
    mirror = tmp_path / "mirror"
    (mirror / "PyPI").mkdir(parents=True)
    with zipfile.ZipFile(mirror / "PyPI" / "all.zip", "w") as writer:
        writer.write(steam / "PYSEC-2019-125.yaml", "PYSEC-2019-125.yaml")
    monkeypatch.setenv("ADVISORY_FEED_URL", mirror.as_uri())
    out = tmp_path / "index.idx"
    code = main(["db", "update", "--out", str(out), "--ecosystem", "PyPI"])
    assert (code, capsys.readouterr().out.splitlines()[1:], load_index(out).rejected_counts()) == (
        0, ["  PyPI: 0 (1 rejected)", *REJECTED_LINES], {"PyPI": 1}
    )


def test_build_reads_azure_linux_oval_and_lists_its_rejections(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = testdata / "advisories/native-feeds/azure-linux/azurelinux-3.0-oval.xml.xz"
    out = tmp_path / "index.idx"
    code = main(["db", "build", "--azure-linux-oval", str(feed), "--out", str(out)])
    index = load_index(out)
    assert (code, index.counts, capsys.readouterr().out.splitlines()[1:],
            index.rejected_for("Azure Linux:3.0", "golang")) == (
        0,
        {"Azure Linux": 1217},
        [
            "  Azure Linux: 1217 (3 rejected)",
            "rejected records (packages they name are reported as not assessed):",
            "  AZURELINUX-3.0-emacs-CVE-2024-30204: CVE-2024-30204 "
            "(oval:com.microsoft.azurelinux:def:37106): evr '0:29.3.azl3' is not a valid rpm EVR",
            "  AZURELINUX-3.0-golang-CVE-2023-39323: CVE-2023-39323 "
            "(oval:com.microsoft.azurelinux:def:34752): evr '0: 1.20.10-1.azl3' is not a valid "
            "rpm EVR",
            "  AZURELINUX-3.0-golang-CVE-2022-41717: CVE-2022-41717 "
            "(oval:com.microsoft.azurelinux:def:34750): "
            "evr '0:1.17.13-2,1.18.8-2,1.21.6-1.azl3' is not a valid rpm EVR",
        ],
        [("AZURELINUX-3.0-golang-CVE-2023-39323", index.rejected[1]["modified"]),
         ("AZURELINUX-3.0-golang-CVE-2022-41717", index.rejected[1]["modified"])],
    )


def test_build_lists_the_mariner_rejections(
    testdata: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    feed = testdata / "advisories/native-feeds/azure-linux/cbl-mariner-2.0-oval.xml.xz"
    main(["db", "build", "--azure-linux-oval", str(feed), "--out", str(tmp_path / "i.idx")])
    lines = capsys.readouterr().out.splitlines()
    assert (lines[1], len(lines), lines[-1]) == (
        "  Mariner: 2282 (8 rejected)", 3 + 8,
        "  MARINER-2.0-golang-CVE-2023-39323: CVE-2023-39323 "
        "(oval:com.microsoft.cbl-mariner:def:31107): evr '0: 1.20.10-1.cm2' is not a valid rpm "
        "EVR",
    )


def test_update_takes_mariner_from_the_oval_url(
    testdata: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "oval"
    mirror.mkdir()
    feeds = testdata / "advisories/native-feeds/azure-linux"
    for name in ("cbl-mariner-2.0-oval.xml", "azurelinux-3.0-oval.xml"):
        (mirror / name).write_bytes(lzma.decompress((feeds / f"{name}.xz").read_bytes()))
    # No 1.0 file in the shared data: an empty but valid OVAL document stands for it.
    (mirror / "cbl-mariner-1.0-oval.xml").write_bytes(
        b'<oval_definitions xmlns="http://oval.mitre.org/XMLSchema/oval-definitions-5"/>'
    )
    monkeypatch.setenv("AZURE_LINUX_OVAL_URL", mirror.as_uri())
    monkeypatch.setenv("ADVISORY_FEED_URL", _mirror(tmp_path).as_uri())
    out = tmp_path / "index" / "index.idx"
    code = main(["db", "update", "--out", str(out), "--ecosystem", "Go",
                 "--ecosystem", "Mariner", "--ecosystem", "Azure Linux"])
    assert (code, load_index(out).counts) == (
        0, {"Go": 2, "Mariner": 2282, "Azure Linux": 1217}
    )
