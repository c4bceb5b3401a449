"""`python -m scanning scan` end to end: the real alpine 3.10.4 image through the analysis
pipeline, matched against the real Alpine 3.10 secdb and the demo records."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import pytest

from scanning.advisories.alpine_secdb import iter_secdb_osv
from scanning.advisories.demo import build_demo_index
from scanning.advisories.index import compile_index, write_index
from scanning.cli import main
from scanning.model import Platform
from scanning.ocibuild import build_oci_layout

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata"
IMAGE_DIGEST = "sha256:2944f6376e43c8808bdcf9be31d92a3daa2c14fb5e8497d05e11a75528ff3026"


@pytest.fixture(scope="module")
def image() -> str:
    archive = SHARED / "images" / "trivy-fanal" / "alpine-310.tar.gz"
    if not archive.is_file():
        pytest.skip(f"shared image not found at {archive}")
    return f"docker-archive:{archive}"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "demo.idx"
    build_demo_index(path)
    return path


def _scan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(["scan", *args])
    return code, capsys.readouterr().out


def test_alpine_3_10_4_is_healthy_against_its_secdb(
    image: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "secdb.idx"
    write_index(
        compile_index(iter_secdb_osv(SHARED / "advisories" / "alpine-secdb-yaml" / "v3.10")), db
    )
    code, out = _scan(capsys, image, "--db", str(db), "--format", "json")
    report = json.loads(out)
    platform = report["platforms"][0]
    assert (
        code,
        report["image"]["digest"],
        platform["platform"],
        platform["os"],
        platform["status"],
        len(platform["packages"]),
        platform["findings"],
    ) == (
        0,
        IMAGE_DIGEST,
        "linux/amd64",
        {"name": "alpine", "version": "3.10.4"},
        "healthy",
        14,
        [],
    )


def test_json_findings_have_the_documented_fields(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _scan(capsys, image, "--db", str(demo_db), "--format", "json", "--exit-code", "4")
    platform = json.loads(out)["platforms"][0]
    short = [
        {
            k: f[k]
            for k in (
                "id",
                "aliases",
                "package",
                "installedVersion",
                "fixedVersion",
                "fixStatus",
                "severity",
                "remediation",
            )
        }
        for f in platform["findings"]
    ]
    assert (code, short[0], [(f["package"], f["severity"]) for f in short]) == (
        4,
        {
            "id": "DEMO-v3.10-0001",
            "aliases": [],
            "package": "musl",
            "installedVersion": "1.1.22-r3",
            "fixedVersion": "1.1.22-r4",
            "fixStatus": "fixed",
            "severity": "critical",
            "remediation": "Upgrade musl from 1.1.22-r3 to 1.1.22-r4 (fixed in Alpine 3.10)",
        },
        [
            ("musl", "critical"),
            ("musl-utils", "critical"),
            ("libcrypto1.1", "medium"),
            ("libssl1.1", "medium"),
            ("busybox", "low"),
            ("ssl_client", "low"),
        ],
    )


def test_json_packages_have_the_documented_fields(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(capsys, image, "--db", str(demo_db), "--format", "json")
    [musl] = [p for p in json.loads(out)["platforms"][0]["packages"] if p["name"] == "musl"]
    assert {k: musl[k] for k in ("name", "version", "ecosystem", "purl", "sourceName")} == {
        "name": "musl",
        "version": "1.1.22-r3",
        "ecosystem": "Alpine:v3.10",
        "purl": "pkg:apk/alpine/musl@1.1.22-r3?arch=x86_64&distro=alpine-3.10.4",
        "sourceName": "musl",
    }
    assert musl["layerDigest"].startswith("sha256:")


def test_base_layer_packages_are_told_to_rebuild(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(
        capsys,
        image,
        "--db",
        str(demo_db),
        "--format",
        "json",
        "--base-layers",
        "1",
        "--severity",
        "critical",
    )
    findings = json.loads(out)["platforms"][0]["findings"]
    assert [f["remediation"] for f in findings] == [
        "Rebuild on a newer base image: the package comes from the base layer "
        "(musl 1.1.22-r4 is fixed in Alpine 3.10)",
        "Rebuild on a newer base image: the package comes from the base layer "
        "(musl-utils (source package musl) 1.1.22-r4 is fixed in Alpine 3.10)",
    ]


def test_ignore_unfixed_and_severity_filters(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(
        capsys,
        image,
        "--db",
        str(demo_db),
        "--format",
        "json",
        "--ignore-unfixed",
        "--severity",
        "medium,low",
    )
    findings = json.loads(out)["platforms"][0]["findings"]
    assert [(f["package"], f["id"]) for f in findings] == [
        ("busybox", "DEMO-v3.10-0003"),
        ("ssl_client", "DEMO-v3.10-0003"),
    ]


def test_table_groups_by_severity(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(capsys, image, "--db", str(demo_db), "--severity", "critical")
    assert out.splitlines()[2:] == [
        "linux/amd64  alpine 3.10.4  unhealthy: 14 packages, 2 findings",
        "",
        "  CRITICAL (2)",
        "    PACKAGE     INSTALLED  FIXED      ADVISORY         STATUS",
        "    musl        1.1.22-r3  1.1.22-r4  DEMO-v3.10-0001  fixed",
        "    musl-utils  1.1.22-r3  1.1.22-r4  DEMO-v3.10-0001  fixed",
    ]


def test_sarif_has_one_rule_per_advisory(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(capsys, image, "--db", str(demo_db), "--format", "sarif")
    sarif = json.loads(out)
    run = sarif["runs"][0]
    assert (
        sarif["version"],
        [r["id"] for r in run["tool"]["driver"]["rules"]],
        [(r["ruleId"], r["level"]) for r in run["results"]],
        run["tool"]["driver"]["rules"][0]["properties"]["security-severity"],
    ) == (
        "2.1.0",
        ["DEMO-v3.10-0001", "DEMO-v3.10-0002", "DEMO-v3.10-0003"],
        [
            ("DEMO-v3.10-0001", "error"),
            ("DEMO-v3.10-0001", "error"),
            ("DEMO-v3.10-0002", "warning"),
            ("DEMO-v3.10-0002", "warning"),
            ("DEMO-v3.10-0003", "note"),
            ("DEMO-v3.10-0003", "note"),
        ],
        "9.8",
    )


def test_cyclonedx_vulnerabilities_point_at_components(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out = _scan(capsys, image, "--db", str(demo_db), "--format", "cyclonedx")
    bom = json.loads(out)
    refs = {c["bom-ref"] for c in bom["components"]}
    affects = [a["ref"] for v in bom["vulnerabilities"] for a in v["affects"]]
    assert (
        bom["specVersion"],
        len(bom["components"]),
        [v["id"] for v in bom["vulnerabilities"]],
        bom["vulnerabilities"][0]["ratings"][0]["method"],
        all(ref in refs for ref in affects),
        len(affects),
    ) == ("1.5", 14, ["DEMO-v3.10-0001", "DEMO-v3.10-0002", "DEMO-v3.10-0003"], "CVSSv31", True, 6)


def test_unknown_severity_word_is_a_usage_error(
    image: str, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["scan", image, "--db", str(demo_db), "--severity", "severe"])
    assert (code, capsys.readouterr().err) == (
        2,
        "error: unknown severity 'severe'; use unknown, negligible, low, medium, high, critical\n",
    )


def _empty_image(tmp_path: Path) -> str:
    build_oci_layout(tmp_path, [(Platform.parse("linux/amd64"), [{"hello": b"\x7fELF"}])])
    return f"oci:{tmp_path}:latest"


def test_an_image_with_nothing_to_inventory_is_unsupported_and_passes_a_plain_gate(
    tmp_path: Path, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = _scan(capsys, _empty_image(tmp_path / "img"), "--db", str(demo_db),
                      "--format", "json", "--exit-code", "1")
    platform = json.loads(out)["platforms"][0]
    assert (code, platform["status"], platform["reason"], platform["packages"]) == (
        0, "unsupported",
        "no packages found: no OS package database and no language package manifests", [])


def test_fail_on_unsupported_fails_the_gate(
    tmp_path: Path, demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = _scan(capsys, _empty_image(tmp_path / "img"), "--db", str(demo_db),
                    "--exit-code", "3", "--fail-on", "unsupported,partial,failed")
    assert code == 3


def test_fail_on_rejects_a_status_it_does_not_gate(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scan", "oci:/nowhere", "--db", str(demo_db), "--fail-on", "healthy"]) == 2
    assert "--fail-on: unknown status 'healthy'" in capsys.readouterr().err


def test_alpine_upgraded_from_newer_repositories_is_matched_as_that_branch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed = SHARED / "pkgdb" / "apk" / "trivy-image-alpine-310.installed"
    if not installed.is_file():
        pytest.skip(f"shared package database not found at {installed}")
    build_oci_layout(tmp_path / "layout", [(Platform(os="linux", architecture="amd64"), [{
        "etc/alpine-release": b"3.10.4\n",
        "etc/apk/repositories": b"https://dl-cdn.alpinelinux.org/alpine/v3.11/main\n",
        "lib/apk/db/installed": installed.read_bytes()}])], tag="v1")
    secdb = SHARED / "advisories" / "alpine-secdb-yaml"
    db = tmp_path / "secdb.idx"
    write_index(compile_index(itertools.chain(iter_secdb_osv(secdb / "v3.10"),
                                              iter_secdb_osv(secdb / "v3.11"))), db)
    code, out = _scan(capsys, f"oci:{tmp_path / 'layout'}:v1", "--db", str(db),
                      "--format", "json")
    platform = json.loads(out)["platforms"][0]
    assert (code, platform["os"]) == (
        0, {"name": "alpine", "version": "3.10.4", "branch": "v3.11"})
    assert {f["match"]["ecosystem"] for f in platform["findings"]} == {"Alpine:v3.11"}
    assert "CVE-2019-14697" in {f["id"] for f in platform["findings"]}


def test_malformed_manifest_is_one_line_naming_the_field_not_a_bad_reference(
    demo_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = b"{}"
    config_digest = f"sha256:{hashlib.sha256(config).hexdigest()}"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + "1" * 64, "size": "10"}],
    }).encode()
    manifest_digest = f"sha256:{hashlib.sha256(manifest).hexdigest()}"
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for data in (config, manifest):
        (blobs / hashlib.sha256(data).hexdigest()).write_bytes(data)
    (tmp_path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
         "size": len(manifest)}]}))
    capsys.readouterr()
    code = main(["scan", f"oci:{tmp_path}", "--db", str(demo_db)])
    captured = capsys.readouterr()
    assert (code, captured.out, captured.err) == (
        2, "", f"error: manifest {manifest_digest}: layers[0].size must be an integer, "
        "not a string\n")


def test_malformed_reference_is_a_bad_image_reference(
    demo_db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    code = main(["scan", "registry.example/UPPER:v1", "--db", str(demo_db)])
    assert (code, capsys.readouterr().err) == (
        2, "error: bad image reference 'registry.example/UPPER:v1': malformed repository name "
        "in 'registry.example/UPPER:v1'\n")
