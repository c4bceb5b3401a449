"""Java archive analyzer: pom.properties, MANIFEST.MF and nested archives, against trivy's parse."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from scanning.analyzers import java
from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.java import JavaArchiveAnalyzer
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = JavaArchiveAnalyzer()
Row = tuple[str, str, str, tuple[str, ...]]


def analyze_bytes(data: bytes, path: str = "app/app.jar") -> tuple[Package, ...]:
    return ANALYZER.analyze(
        AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data))
    ).packages


def analyze_trivy_jar(testdata: Path, name: str) -> list[Row]:
    """Parse one of trivy's test archives under the path trivy's tests give it."""
    archive = testdata / "pkgdb" / "java" / "trivy-jar" / name
    with archive.open("rb") as reader:
        packages = ANALYZER.analyze(
            AnalyzerInput(path=f"testdata/{name}", size=archive.stat().st_size, reader=reader)
        ).packages
    return sorted((p.name, p.version, p.path, p.licenses) for p in packages)


def trivy_expected(testdata: Path, key: str) -> list[Row]:
    expected = json.loads(
        (testdata / "pkgdb" / "java" / "trivy-jar" / "EXPECTED.trivy.json").read_text()
    )
    records: list[dict[str, Any]] = expected[key]
    return sorted(
        (r["Name"], r["Version"], r["FilePath"], tuple(r.get("Licenses", ()))) for r in records
    )


def make_zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def pom_properties(group: str, artifact: str, version: str) -> bytes:
    return f"groupId={group}\nartifactId={artifact}\nversion={version}\n".encode()


# --- trivy's archives -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("archive", "key"),
    [
        ("maven.war", "wantMaven"),
        ("gradle.war", "wantGradle"),
        ("nested.jar", "wantNestedJar"),
        ("hadoop-shaded-guava-1.1.0-SNAPSHOT.jar", "wantFatjar"),
        ("io.quarkus.gizmo.gizmo-1.1.jar", "wantDuplicatesJar"),
        ("multi-license-1.0.0.jar", "wantMultiLicense"),
    ],
)
def test_archive_equals_trivy(testdata: Path, archive: str, key: str) -> None:
    assert analyze_trivy_jar(testdata, archive) == trivy_expected(testdata, key)


def test_jar_without_pom_properties_is_named_from_manifest_as_trivy_offline(
    testdata: Path,
) -> None:
    # trivy online finds org.springframework:spring-core 5.3.3 by the jar's SHA-1 on Maven
    # Central ("wantSHA1"); offline it reads the manifest, and so do we.
    assert analyze_trivy_jar(testdata, "test.jar") == trivy_expected(testdata, "wantOffline")


def test_jar_known_only_by_file_name_gives_nothing_offline(testdata: Path) -> None:
    # trivy's "wantHeuristic" (com.example:heuristic) comes from a Maven Central search by the
    # artifactId in the file name: an online lookup we do not make.
    assert analyze_trivy_jar(testdata, "heuristic-1.0.0-SNAPSHOT.jar") == []


def test_package_has_maven_purl_and_nested_path(testdata: Path) -> None:
    archive = testdata / "pkgdb" / "java" / "trivy-jar" / "nested.jar"
    with archive.open("rb") as reader:
        packages = ANALYZER.analyze(
            AnalyzerInput(path="opt/nested.jar", size=archive.stat().st_size, reader=reader)
        ).packages
    assert packages[0] == Package(
        type=PackageType.MAVEN,
        name="test:nested2",
        version="0.0.2",
        purl="pkg:maven/test/nested2@0.0.2",
        path="opt/nested.jar/META-INF/jars/nested2.jar",
    )


# --- metadata formats -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "artifact", "version"),
    [
        ("small.pom.properties", "example-java-app-maven", "0.1.0"),
        ("extra.pom.properties", "example-java-app-maven", "0.1.0"),
        ("colon-delimited.pom.properties", "example-java-app-maven", "0.1.0"),
        ("colon-delimited-with-equals.pom.properties", "example-java=app-maven", "0.1.0=something"),
        (
            "equals-delimited-with-colons.pom.properties",
            "example-java:app-maven",
            "0.1.0:something",
        ),
    ],
)
def test_pom_properties_variants_read_as_java_properties(
    testdata: Path, sample: str, artifact: str, version: str
) -> None:
    text = (testdata / "pkgdb" / "java" / "syft-pom-properties" / sample).read_bytes()
    jar = make_zip({"META-INF/maven/org.anchore/x/pom.properties": text})
    assert [(p.name, p.version) for p in analyze_bytes(jar)] == [
        (f"org.anchore:{artifact}", version)
    ]


def syft_manifest_jar(testdata: Path, name: str) -> bytes:
    folder = testdata / "pkgdb" / "java" / "syft-jar-metadata" / name / "META-INF"
    return make_zip({"META-INF/MANIFEST.MF": (folder / "MANIFEST.MF").read_bytes()})


def test_manifest_of_real_jar_names_the_archive_with_bundle_license(testdata: Path) -> None:
    packages = analyze_bytes(syft_manifest_jar(testdata, "jackson-core-2.15.2"))
    assert packages == (
        Package(
            type=PackageType.MAVEN,
            name="com.fasterxml.jackson.core:Jackson-core",
            version="2.15.2",
            purl="pkg:maven/com.fasterxml.jackson.core/Jackson-core@2.15.2",
            path="app/app.jar",
            licenses=("Apache-2.0",),
        ),
    )


def test_manifest_fields_outside_the_main_section_are_ignored(testdata: Path) -> None:
    # opensaml-core declares Implementation-* only in a "Name: org/opensaml/core/" section.
    assert analyze_bytes(syft_manifest_jar(testdata, "opensaml-core-3.4.6")) == ()


def test_manifest_without_group_gives_no_package(testdata: Path) -> None:
    assert analyze_bytes(syft_manifest_jar(testdata, "micronaut-aop-4.9.11")) == ()


def test_manifest_continuation_lines_are_unfolded_and_sections_ignored() -> None:
    manifest = (
        b"Manifest-Version: 1.0\r\nImplementation-Title: long-na\r\n me\r\n"
        b"Implementation-Version: 1.0\r\nImplementation-Vendor-Id: org.example\r\n\r\n"
        b"Name: inner\r\nImplementation-Version: 9.9\r\n"
    )
    assert [
        (p.name, p.version) for p in analyze_bytes(make_zip({"META-INF/MANIFEST.MF": manifest}))
    ] == [("org.example:long-name", "1.0")]


def test_manifest_with_free_text_vendor_gives_no_package() -> None:
    # Deliberate difference from trivy offline, which would report "JBoss by Red Hat:Gizmo".
    manifest = (
        b"Implementation-Title: Gizmo\nImplementation-Version: 1.1\n"
        b"Implementation-Vendor: JBoss by Red Hat\n"
    )
    assert analyze_bytes(make_zip({"META-INF/MANIFEST.MF": manifest})) == ()


@pytest.mark.parametrize(
    ("line", "want"),
    [
        ("Plugin-License-Name: Apache License, Version 2.0", ("Apache License, Version 2.0",)),
        ("Plugin-License-Name-2: MIT License", ("MIT License",)),
        ("Plugin-License-Name:  MIT License  ", ("MIT License",)),
        ("Plugin-License-Name: ", ()),
        ("Plugin-License-Url: https://opensource.org/licenses/MIT", ()),
    ],
)
def test_jenkins_plugin_license_name_as_trivy(line: str, want: tuple[str, ...]) -> None:
    jar = make_zip(
        {
            "META-INF/maven/org.example/plugin/pom.properties": pom_properties(
                "org.example", "plugin", "1.0"
            ),
            "META-INF/MANIFEST.MF": f"Manifest-Version: 1.0\n{line}\n".encode(),
        }
    )
    assert analyze_bytes(jar, "var/jenkins/plugin.hpi")[0].licenses == want


def test_duplicate_maven_equal_versions_are_reported_once() -> None:
    jar = make_zip(
        {
            "a/pom.properties": pom_properties("g", "a", "2.17"),
            "b/pom.properties": pom_properties("g", "a", "2.17.0"),
        }
    )
    assert [(p.name, p.version) for p in analyze_bytes(jar)] == [("g:a", "2.17")]


# --- required() -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("app/app.jar", True),
        ("srv/ROOT.war", True),
        ("srv/app.EAR", True),
        ("var/jenkins/plugins/git.jpi", True),
        ("var/jenkins/plugins/git.hpi", True),
        ("app/app.jar.sha1", False),
        ("app/classes/App.class", False),
    ],
)
def test_required_wants_java_archives(path: str, wanted: bool) -> None:
    assert ANALYZER.required(path, 0o644) is wanted


# --- hostile and broken archives --------------------------------------------------------------


def test_not_a_zip_is_an_analyzer_error() -> None:
    with pytest.raises(AnalyzerError, match="not a readable zip"):
        analyze_bytes(b"PK\x03\x04 this is not really a zip")


def test_truncated_archive_is_an_analyzer_error(testdata: Path) -> None:
    data = (testdata / "pkgdb" / "java" / "trivy-jar" / "gradle.war").read_bytes()
    with pytest.raises(AnalyzerError, match="not a readable zip"):
        analyze_bytes(data[: len(data) // 2], "srv/gradle.war")


def analyze_output(data: bytes, path: str = "app/app.jar") -> AnalyzerOutput:
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data)))


def test_broken_nested_jar_in_a_real_war_skips_only_its_packages(testdata: Path) -> None:
    war = (testdata / "pkgdb" / "java" / "trivy-jar" / "gradle.war").read_bytes()
    with zipfile.ZipFile(io.BytesIO(war)) as archive:
        entries = {info.filename: archive.read(info) for info in archive.infolist()}
    entries["WEB-INF/lib/log4j-1.2.17.jar"] = b"not a zip at all"
    output = analyze_output(make_zip(entries), "srv/gradle.war")
    assert output.packages == tuple(
        p for p in analyze_output(war, "srv/gradle.war").packages
        if p.path != "srv/gradle.war/WEB-INF/lib/log4j-1.2.17.jar")
    assert len(output.packages) == 3
    assert output.warnings == (
        "java: srv/gradle.war entry WEB-INF/lib/log4j-1.2.17.jar: nested archive not a "
        "readable zip archive: File is not a zip file; entry skipped",
    )


def test_nested_archive_escaping_its_parent_is_skipped_with_a_warning() -> None:
    inner = make_zip({"META-INF/maven/g/evil/pom.properties": pom_properties("g", "evil", "1")})
    output = analyze_output(make_zip({"../../evil.jar": inner}))
    assert output.packages == ()
    assert output.warnings == (
        "java: app/app.jar entry ../../evil.jar: nested archive points outside its parent; "
        "entry skipped",
    )


def test_archives_nested_too_deep_are_an_analyzer_error() -> None:
    archive = make_zip({"META-INF/maven/g/a/pom.properties": pom_properties("g", "a", "1")})
    for _ in range(java.MAX_NESTING_DEPTH + 1):
        archive = make_zip({"lib/inner.jar": archive}, zipfile.ZIP_STORED)
    with pytest.raises(AnalyzerError, match="nested more than"):
        analyze_bytes(archive)


def test_nested_zip_bomb_hits_the_inflate_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(java, "MAX_INFLATED_TOTAL", 1024 * 1024)
    bomb = make_zip({"lib/bomb.jar": b"\x00" * (4 * 1024 * 1024)})  # ~4 KiB compressed
    assert len(bomb) < 16 * 1024
    with pytest.raises(AnalyzerError, match="zip bomb"):
        analyze_bytes(bomb)


def test_oversized_metadata_file_is_skipped_and_the_rest_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(java, "MAX_METADATA_FILE", 1024)
    jar = make_zip({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n" + b"X: y\n" * 1000,
                    "META-INF/maven/g/a/pom.properties": pom_properties("g", "a", "1")})
    output = analyze_output(jar)
    assert [(p.name, p.version) for p in output.packages] == [("g:a", "1")]
    assert output.warnings == (
        "java: app/app.jar entry META-INF/MANIFEST.MF: larger than 1024 bytes; entry skipped",
    )
