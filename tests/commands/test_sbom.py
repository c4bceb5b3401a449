"""``python -m scanning sbom``: formats, platform option, cache, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scanning.cli import main

ALPINE = "images/trivy-fanal/alpine-310.tar.gz"


def test_json_output_is_the_documented_document(testdata: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbom", f"docker-archive:{testdata / ALPINE}"]) == 0
    document = json.loads(capsys.readouterr().out)
    (platform,) = document["platforms"]
    assert (document["schema_version"], document["status"], platform["platform"],
            platform["os"]["version_id"], len(platform["packages"]),
            platform["packages"][0]["name"]) == (1, "complete", "linux/amd64", "3.10.4", 14,
                                                 "alpine-baselayout")


def test_cyclonedx_output_lists_the_os_and_every_package(testdata: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert main(["sbom", f"docker-archive:{testdata / ALPINE}", "--format", "cyclonedx"]) == 0
    bom = json.loads(capsys.readouterr().out)
    types = [component["type"] for component in bom["components"]]
    assert (bom["bomFormat"], bom["specVersion"], types.count("operating-system"),
            types.count("library"), bom["components"][1]["purl"]) == (
        "CycloneDX", "1.5", 1, 14,
        "pkg:apk/alpine/alpine-baselayout@3.1.2-r0?arch=x86_64&distro=alpine-3.10.4")


def test_table_output_has_one_row_per_package(testdata: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbom", f"docker-archive:{testdata / ALPINE}", "--format", "table",
                 "--cache", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2:4] == ["linux/amd64  alpine 3.10.4  14 packages  complete",
                          "TYPE  NAME                    VERSION      LAYER  PATH"]
    assert len(lines) == 4 + 14
    assert list(tmp_path.rglob("*.json.gz")) != []


def test_missing_archive_exits_non_zero_with_one_line(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbom", f"docker-archive:{tmp_path}/absent.tar"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")


def test_malformed_platform_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sbom", "oci:/nowhere", "--platform", "linux"]) == 2
    assert capsys.readouterr().err == "error: platform must be OS/ARCH[/VARIANT], got 'linux'\n"
