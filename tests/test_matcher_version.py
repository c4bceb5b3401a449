"""The matcher's version (``scanning.matcher_version``): a fingerprint of the code that decides
findings, so a stored verdict names the code that decided it."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from scanning import matcher_version as version_module
from scanning.matcher_version import SOURCES, fingerprint, matcher_version, source_files

PACKAGE = Path(version_module.__file__).resolve().parent


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_this_code_s_version_is_the_fingerprint_of_its_matcher_sources() -> None:
    names = [path.relative_to(PACKAGE).as_posix() for path in source_files(PACKAGE)]
    assert (matcher_version(), len(matcher_version())) == (fingerprint(PACKAGE), 16)
    assert {"matching.py", "assessment.py", "versions/_dpkg.py", "versions/osv_ranges.py",
            "service/evaluation.py", "advisories/index.py"} <= set(names)
    assert "analyzers/apk.py" not in names and names == sorted(names)


def test_any_edit_of_a_source_changes_it_and_nothing_else_does(tmp_path: Path) -> None:
    files = {"matching.py": "A = 1\n", "versions/_semver.py": "B = 2\n", "api.py": "C = 3\n"}
    sources = ("matching.py", "versions")
    root = tree(tmp_path / "one", files)
    first = fingerprint(root, sources, ())
    same = fingerprint(tree(tmp_path / "two", files), sources, ())
    comment = fingerprint(tree(tmp_path / "three", {**files, "matching.py": "A = 1  # x\n"}),
                          sources, ())
    added = fingerprint(tree(tmp_path / "four", {**files, "versions/_rpm.py": ""}), sources, ())
    moved = fingerprint(tree(tmp_path / "five", {"matching.py": "A = 1\n",
                                                 "versions/_apk.py": "B = 2\n"}), sources, ())
    other = fingerprint(tree(tmp_path / "six", {**files, "api.py": "C = 4\n"}), sources, ())
    missing = fingerprint(tree(tmp_path / "seven", {"versions/_semver.py": "B = 2\n"}),
                          sources, ())
    assert same == other == first
    assert len({first, comment, added, moved, missing}) == 5


def test_the_libraries_it_compares_versions_with_are_part_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tree(tmp_path, {"matching.py": "A = 1\n"})
    before = fingerprint(root, ("matching.py",), ("univers",))
    installed = metadata.version
    monkeypatch.setattr(metadata, "version",
                        lambda name: "0.0.1" if name == "univers" else installed(name))
    assert (fingerprint(root, ("matching.py",), ("univers",)) != before,
            fingerprint(root, ("matching.py",), ()) == fingerprint(root, ("matching.py",), (
                "no-such-library-here",))) == (True, False)
    assert set(SOURCES) >= {"matching.py", "versions", "severity.py"}
