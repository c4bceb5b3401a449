"""npm analyzer: installed node_modules/<name>/package.json manifests (own fixture tree)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from scanning.analyzers.base import AnalyzerInput
from scanning.analyzers.npm import MAX_JSON_DEPTH, NpmAnalyzer
from scanning.errors import AnalyzerError
from scanning.model import Package, PackageType

ANALYZER = NpmAnalyzer()
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "npm"
PATH = "app/node_modules/x/package.json"


def analyze_bytes(data: bytes, path: str = PATH) -> tuple[Package, ...]:
    return ANALYZER.analyze(
        AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data))
    ).packages


def scan_fixture_tree() -> tuple[Package, ...]:
    """Walk the fixture as the layer walker would: required() on every file, then analyze()."""
    found: list[Package] = []
    for file in sorted(FIXTURES.rglob("*")):
        if not file.is_file():
            continue
        path = file.relative_to(FIXTURES).as_posix().replace("node_modules_", "node_modules")
        if ANALYZER.required(path, 0o100644):
            found.extend(analyze_bytes(file.read_bytes(), path))
    return tuple(found)


def test_fixture_tree_gives_installed_packages_only() -> None:
    assert scan_fixture_tree() == (
        Package(
            type=PackageType.NPM,
            name="@babel/core",
            version="7.24.0",
            purl="pkg:npm/%40babel/core@7.24.0",
            path="app/node_modules/@babel/core/package.json",
            licenses=("MIT",),
        ),
        Package(
            type=PackageType.NPM,
            name="debug",
            version="2.6.9",
            purl="pkg:npm/debug@2.6.9",
            path="app/node_modules/express/node_modules/debug/package.json",
            licenses=("MIT",),
        ),
        Package(
            type=PackageType.NPM,
            name="express",
            version="4.19.2",
            purl="pkg:npm/express@4.19.2",
            path="app/node_modules/express/package.json",
            licenses=("MIT",),
        ),
        Package(
            type=PackageType.NPM,
            name="legacy-licenses",
            version="0.1.0",
            purl="pkg:npm/legacy-licenses@0.1.0",
            path="app/node_modules/legacy-licenses/package.json",
            licenses=("MIT", "GPL-2.0"),
        ),
        Package(
            type=PackageType.NPM,
            name="lodash",
            version="4.17.21",
            purl="pkg:npm/lodash@4.17.21",
            path="app/node_modules/lodash/package.json",
            licenses=("MIT",),
        ),
    )


def test_manifest_without_version_gives_no_package() -> None:
    assert analyze_bytes(b'{"name": "x", "private": true}') == ()


def test_license_object_form() -> None:
    (package,) = analyze_bytes(b'{"name": "x", "version": "1.0.0", "license": {"type": "ISC"}}')
    assert package.licenses == ("ISC",)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not valid JSON"),
        (b'{"name": "x", "version": "1.0.0"', "not valid JSON"),
        (b"[1, 2]", "top level is not a JSON object"),
        (b'{"name": "x", "version": 1}', "malformed version"),
        (b'{"name": ["x"], "version": "1.0.0"}', "malformed name"),
        (b'{"name": "x y", "version": "1.0.0"}', "malformed name"),
        (b'{"name": "x", "version": "1.0.0 beta"}', "malformed version"),
        (b'{"name": "x", "version": "1.0.0", "v": "\xff"}', "not valid JSON"),
    ],
)
def test_malformed_manifest_is_an_analyzer_error(data: bytes, message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        analyze_bytes(data)


def test_nesting_past_the_depth_cap_is_an_error() -> None:
    deep = (
        b'{"name": "x", "version": "1.0.0", "a": '
        + b"[" * MAX_JSON_DEPTH
        + b"]" * MAX_JSON_DEPTH
        + b"}"
    )
    with pytest.raises(AnalyzerError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        analyze_bytes(deep)


def test_nesting_far_past_the_decoder_limit_is_an_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(AnalyzerError, match="nested too deep"):
        analyze_bytes(deep)


def test_brackets_inside_strings_do_not_count_as_depth() -> None:
    readme = "[" * (MAX_JSON_DEPTH * 2)
    data = f'{{"name": "x", "version": "1.0.0", "readme": "{readme}"}}'.encode()
    assert [p.name for p in analyze_bytes(data)] == ["x"]
