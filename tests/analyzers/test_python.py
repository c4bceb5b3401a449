"""Python analyzer: dist-info METADATA and egg-info PKG-INFO, against Trivy's parse."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.python import PythonAnalyzer, normalize_name
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = PythonAnalyzer()
SITE = "usr/local/lib/python3.11/site-packages"


def analyze_bytes(data: bytes, path: str = f"{SITE}/x-1.0.dist-info/METADATA") -> Package:
    (package,) = ANALYZER.analyze(
        AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data))
    ).packages
    return package


# Where our parse differs from Trivy's on purpose, by fixture file: (ours, Trivy's) for
# (name, licenses). Names: PEP 503 normalised. "UNKNOWN" is setuptools' "no licence given";
# "file://..." is Trivy's pointer to a licence file, not a licence.
DIFFERENCES = {
    "setuptools-51.3.3-py3.8.egg-info.PKG-INFO": (
        ("setuptools", ()),
        ("setuptools", ("UNKNOWN",)),
    ),
    "unidecode-egg-info.PKG-INFO": (("unidecode", ()), ("Unidecode", ("UNKNOWN",))),
    "networkx-3.0.METADATA": (("networkx", ()), ("networkx", ("file://LICENSE.txt",))),
}


def trivy_cases(testdata: Path) -> list[tuple[str, str, str, tuple[str, ...]]]:
    expected = json.loads(
        (testdata / "pkgdb" / "python" / "trivy-metadata" / "EXPECTED.trivy.json").read_text()
    )
    cases = []
    for case in expected["cases"]:
        if case.get("wantErr"):
            continue  # testdata/invalid.json was not staged
        (want,) = case["want"]
        file = case["input"].removeprefix("testdata/")
        cases.append((file, want["Name"], want["Version"], tuple(want["Licenses"] or ())))
    return cases


def test_every_trivy_case_equals_trivy_parse(testdata: Path) -> None:
    folder = testdata / "pkgdb" / "python" / "trivy-metadata"
    cases = trivy_cases(testdata)
    assert len(cases) == 10
    for file, name, version, licenses in cases:
        package = analyze_bytes((folder / file).read_bytes())
        ours = (package.name, package.licenses)
        if file in DIFFERENCES:
            assert (ours, (name, licenses)) == DIFFERENCES[file], file
        else:
            assert ours == (name, licenses), file
        assert package.version == version, file


def test_grype_dist_info_metadata(testdata: Path) -> None:
    data = (testdata / "pkgdb" / "python" / "grype-dist-info" / "METADATA").read_bytes()
    path = f"{SITE}/Pygments-2.6.1.dist-info/METADATA"
    assert analyze_bytes(data, path) == Package(
        type=PackageType.PYPI,
        name="pygments",
        version="2.6.1",
        purl="pkg:pypi/pygments@2.6.1",
        path=path,
        licenses=("BSD License",),
    )


def test_egg_info_file_is_itself_pkg_info(testdata: Path) -> None:
    data = testdata / "pkgdb" / "python" / "trivy-metadata" / "distlib-0.3.1-py3.9.egg-info"
    path = "usr/lib/python3.9/site-packages/distlib-0.3.1-py3.9.egg-info"
    package = analyze_bytes(data.read_bytes(), path)
    assert (package.name, package.version, package.path) == ("distlib", "0.3.1", path)


@pytest.mark.parametrize(
    ("written", "normalized"),
    [
        ("Unidecode", "unidecode"),
        ("zope.interface", "zope-interface"),
        ("Foo__Bar-._baz", "foo-bar-baz"),
        ("ruamel.yaml.clib", "ruamel-yaml-clib"),
    ],
)
def test_name_is_pep503_normalized(written: str, normalized: str) -> None:
    assert normalize_name(written) == normalized


def test_license_expression_wins_over_classifiers() -> None:
    data = (
        b"Metadata-Version: 2.4\nName: a\nVersion: 1\nLicense-Expression: MIT OR Apache-2.0\n"
        b"License: BSD\nClassifier: License :: OSI Approved :: BSD License\n\n"
    )
    assert analyze_bytes(data).licenses == ("MIT OR Apache-2.0",)


def test_bare_osi_approved_classifier_is_not_a_license() -> None:
    data = b"Name: a\nVersion: 1\nClassifier: License :: OSI Approved\nLicense: Apache 2.0\n\n"
    assert analyze_bytes(data).licenses == ("Apache 2.0",)


def test_body_after_headers_is_ignored() -> None:
    data = b"Name: a\nVersion: 1\n\nName: b\nthis is the long description: anything\n"
    assert (analyze_bytes(data).name, analyze_bytes(data).version) == ("a", "1")


def test_headers_are_case_insensitive_and_crlf_is_accepted() -> None:
    package = analyze_bytes(b"name: Foo\r\nVERSION: 2.0\r\n\r\n")
    assert (package.name, package.version, package.purl) == ("foo", "2.0", "pkg:pypi/foo@2.0")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "needs exactly one Name and one Version"),
        (b"Name: a\n\n", "needs exactly one Name and one Version"),
        (b"Name: a\nName: b\nVersion: 1\n", "needs exactly one Name and one Version"),
        (b"Name: a b\nVersion: 1\n", "malformed Name"),
        (b"Name: a\nVersion: 1 2\n", "malformed Version"),
        (b"Name: a\nVersion: 1\xff\n", "malformed Version"),
        (b"\x89PNG\r\n\x1a\n", "needs exactly one Name and one Version"),
    ],
)
def test_malformed_metadata_is_an_analyzer_error(data: bytes, message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        analyze_bytes(data)


def grype_metadata(testdata: Path) -> bytes:
    return (testdata / "pkgdb" / "python" / "grype-dist-info" / "METADATA").read_bytes()


def analyze_output(data: bytes) -> AnalyzerOutput:
    path = f"{SITE}/x-1.0.dist-info/METADATA"
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data)))


@pytest.mark.parametrize(
    ("corrupt", "warning"),
    [
        ((b"Keywords: syntax highlighting\n", b"Keywords: syntax highlighting\nnot a header\n"),
         "line 10: not a 'Header: value' line"),
        ((b"Metadata-Version: 2.1\n", b" indented\nMetadata-Version: 2.1\n"),
         "line 1: continuation without header"),
    ],
)
def test_malformed_header_line_is_skipped_with_a_warning(
    testdata: Path, corrupt: tuple[bytes, bytes], warning: str
) -> None:
    data = grype_metadata(testdata)
    assert data.count(corrupt[0]) == 1
    output = analyze_output(data.replace(*corrupt))
    assert output.packages == analyze_output(data).packages
    assert output.warnings == (
        f"python: {SITE}/x-1.0.dist-info/METADATA {warning}; entry skipped",
    )


def test_non_utf8_license_is_kept_with_replacement_characters() -> None:
    assert analyze_bytes(b"Name: a\nVersion: 1\nLicense: caf\xe9\n\n").licenses == ("caf\ufffd",)


def test_huge_header_is_read_whole() -> None:
    data = b"Name: a\nVersion: 1\nSummary: " + b"x" * (4 * 1024 * 1024) + b"\n\n"
    assert analyze_bytes(data).name == "a"
