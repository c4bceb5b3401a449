"""The matcher's version (``scanning.matcher_version``): a fingerprint of the code that decides
findings, so a stored verdict names the code that decided it."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

from scanning import matcher_version as version_module
from scanning.matcher_version import (
    PYTHON,
    SOURCES,
    fingerprint,
    matcher_version,
    source_files,
)

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


def test_any_change_to_a_source_s_code_changes_it_and_nothing_else_does(
        tmp_path: Path) -> None:
    files = {"matching.py": '"""Doc."""\nA = 1\n', "versions/_semver.py": "B = 2\n",
             "api.py": "C = 3\n"}
    sources = ("matching.py", "versions")

    def variant(name: str, changed: dict[str, str]) -> str:
        return fingerprint(tree(tmp_path / name, {**files, **changed}), sources, ())

    first = fingerprint(tree(tmp_path / "one", files), sources, ())
    same = variant("two", {})
    other = variant("other", {"api.py": "C = 4\n"})
    # Comments and layout are not code.
    comment = variant("comment", {"matching.py": '"""Doc."""\nA = 1  # why\n# more\n'})
    layout = variant("layout", {"matching.py": '"""Doc."""\n\n\nA = (\n    1\n)\n'})
    code = variant("code", {"matching.py": '"""Doc."""\nA = 2\n'})
    docstring = variant("docstring", {"matching.py": '"""Other doc."""\nA = 1\n'})
    added = variant("added", {"versions/_rpm.py": ""})
    moved = fingerprint(tree(tmp_path / "moved", {"matching.py": files["matching.py"],
                                                  "versions/_apk.py": "B = 2\n"}), sources, ())
    missing = fingerprint(tree(tmp_path / "missing", {"versions/_semver.py": "B = 2\n"}),
                          sources, ())
    # A file that does not parse counts by its bytes: any edit of it changes the version.
    broken = variant("broken", {"matching.py": "A = (\n"})
    broken_again = variant("broken-again", {"matching.py": "A = (  \n"})
    assert same == other == comment == layout == first
    assert len({first, code, docstring, added, moved, missing, broken, broken_again}) == 8


def test_the_python_version_is_part_of_it(tmp_path: Path) -> None:
    root = tree(tmp_path, {"matching.py": "A = 1\n"})
    by_python = {python: fingerprint(root, ("matching.py",), (), python=python)
                 for python in ("3.11", "3.12")}
    running = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (running == PYTHON, fingerprint(root, ("matching.py",), ()) == fingerprint(
        root, ("matching.py",), (), python=running), by_python["3.11"] != by_python["3.12"]
            ) == (True, True, True)


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
