"""The one explicit ANALYZERS tuple, and which paths each analyzer asks for."""

from __future__ import annotations

import stat
from collections import Counter

import pytest

from scanning.analyzers import ANALYZERS, analyzer_set_version
from scanning.analyzers.apk import ApkAnalyzer
from scanning.analyzers.dpkg import DpkgAnalyzer
from scanning.analyzers.npm import NpmAnalyzer
from scanning.analyzers.os_release import OSReleaseAnalyzer
from scanning.analyzers.python import PythonAnalyzer

FILE = stat.S_IFREG | 0o644
PERMISSIONS_ONLY = 0o644  # a walker may pass permission bits without the type
DIRECTORY = stat.S_IFDIR | 0o755
SYMLINK = stat.S_IFLNK | 0o777

OURS = (OSReleaseAnalyzer, DpkgAnalyzer, ApkAnalyzer, PythonAnalyzer, NpmAnalyzer)


def test_each_of_our_analyzers_is_listed_exactly_once() -> None:
    counts = Counter(type(analyzer) for analyzer in ANALYZERS)
    assert {kind: counts[kind] for kind in OURS} == dict.fromkeys(OURS, 1)


def test_analyzer_names_are_unique() -> None:
    names = [analyzer.name for analyzer in ANALYZERS]
    assert len(names) == len(set(names))


def test_analyzers_declare_integer_versions_and_positive_caps() -> None:
    assert all(
        isinstance(a.version, int) and a.version >= 1 and a.max_file_size > 0 for a in ANALYZERS
    )


def test_analyzer_set_version_is_stable() -> None:
    assert analyzer_set_version() == analyzer_set_version(tuple(reversed(ANALYZERS)))


OS_RELEASE_TABLE = [
    ("etc/os-release", FILE, True),
    ("usr/lib/os-release", FILE, True),
    ("etc/alpine-release", FILE, True),
    ("etc/debian_version", FILE, True),
    ("etc/redhat-release", FILE, True),
    ("etc/centos-release", FILE, True),
    ("etc/rocky-release", FILE, True),
    ("etc/almalinux-release", FILE, True),
    ("etc/oracle-release", FILE, True),
    ("etc/fedora-release", FILE, True),
    ("etc/system-release", FILE, True),
    ("etc/lsb-release", FILE, True),
    ("etc/SuSE-release", FILE, True),
    ("etc/mariner-release", FILE, True),
    ("etc/os-release", PERMISSIONS_ONLY, True),
    ("etc/os-release", SYMLINK, False),
    ("etc/os-release", DIRECTORY, False),
    ("/etc/os-release", FILE, False),
    ("usr/etc/os-release", FILE, False),
    ("etc/os-release.bak", FILE, False),
    ("etc/issue", FILE, False),
    ("etc/suse-release", FILE, False),
]

DPKG_TABLE = [
    ("var/lib/dpkg/status", FILE, True),
    ("var/lib/dpkg/status", PERMISSIONS_ONLY, True),
    ("var/lib/dpkg/status.d/libc6", FILE, True),
    ("var/lib/dpkg/status.d/libpython3.11-minimal", FILE, True),
    ("var/lib/dpkg/status.d/libc6.md5sums", FILE, False),
    ("var/lib/dpkg/status.d/libsqlite3-0.preinst", FILE, False),
    ("var/lib/dpkg/status.d/base-files.postinst", FILE, False),
    ("var/lib/dpkg/status.d/.wh.libc6", FILE, False),
    ("var/lib/dpkg/status.d/sub/libc6", FILE, False),
    ("var/lib/dpkg/status.d", DIRECTORY, False),
    ("var/lib/dpkg/status-old", FILE, False),
    ("var/lib/dpkg/available", FILE, False),
    ("var/lib/dpkg/info/libc6.list", FILE, False),
    ("usr/share/var/lib/dpkg/status", FILE, False),
    ("var/lib/dpkg/status", SYMLINK, False),
]

APK_TABLE = [
    ("lib/apk/db/installed", FILE, True),
    ("lib/apk/db/installed", PERMISSIONS_ONLY, True),
    ("lib/apk/db/installed", SYMLINK, False),
    ("usr/lib/apk/db/installed", FILE, False),
    ("lib/apk/db/triggers", FILE, False),
    ("lib/apk/db/installed.new", FILE, False),
]

PYTHON_TABLE = [
    ("usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/METADATA", FILE, True),
    ("usr/lib/python3/dist-packages/six-1.16.0.egg-info/PKG-INFO", FILE, True),
    ("usr/lib/python3/dist-packages/distlib-0.3.1-py3.9.egg-info", FILE, True),
    ("opt/venv/lib/python3.11/site-packages/Pygments-2.6.1.dist-info/METADATA", FILE, True),
    ("usr/lib/python3/dist-packages/six-1.16.0.egg-info", DIRECTORY, False),
    ("usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/RECORD", FILE, False),
    ("usr/local/lib/python3.11/site-packages/requests-2.31.0.dist-info/PKG-INFO", FILE, False),
    ("usr/local/lib/python3.11/site-packages/x.egg-info/METADATA", FILE, False),
    (
        "usr/local/lib/python3.11/site-packages/setuptools/_vendor/packaging-24.2.dist-info/METADATA",
        FILE,
        False,
    ),
    ("src/app/tests/fixtures/foo-1.0.dist-info/METADATA", FILE, False),
    ("app/foo.egg-info/PKG-INFO", FILE, False),
    ("app/foo.egg-info", FILE, False),
    ("site-packages/foo-1.0.dist-info/METADATA", FILE, True),
    ("foo-1.0.dist-info/METADATA", FILE, False),
    ("usr/local/lib/python3.11/site-packages/six.py", FILE, False),
]

NPM_TABLE = [
    ("app/node_modules/lodash/package.json", FILE, True),
    ("node_modules/lodash/package.json", FILE, True),
    ("app/node_modules/@babel/core/package.json", FILE, True),
    ("app/node_modules/express/node_modules/debug/package.json", FILE, True),
    ("app/node_modules/@scope/x/node_modules/@other/y/package.json", FILE, True),
    ("usr/lib/node_modules/npm/package.json", FILE, True),
    ("app/package.json", FILE, False),
    ("app/node_modules/lodash/fp/package.json", FILE, False),
    ("app/node_modules/@babel/package.json", FILE, False),
    ("app/node_modules/@/x/package.json", FILE, False),
    ("app/node_modules/.bin/package.json", FILE, False),
    ("app/node_modules/.package-lock.json", FILE, False),
    ("app/node_modules/lodash/package-lock.json", FILE, False),
    ("app/node_modules/lodash/package.json", DIRECTORY, False),
    ("app/node_modules/lodash/package.json", SYMLINK, False),
]


@pytest.mark.parametrize(
    ("analyzer", "path", "mode", "wanted"),
    [(OSReleaseAnalyzer(), *row) for row in OS_RELEASE_TABLE]
    + [(DpkgAnalyzer(), *row) for row in DPKG_TABLE]
    + [(ApkAnalyzer(), *row) for row in APK_TABLE]
    + [(PythonAnalyzer(), *row) for row in PYTHON_TABLE]
    + [(NpmAnalyzer(), *row) for row in NPM_TABLE],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_required(analyzer: object, path: str, mode: int, wanted: bool) -> None:
    assert analyzer.required(path, mode) is wanted  # type: ignore[attr-defined]


def test_no_two_of_our_analyzers_want_the_same_path() -> None:
    tables = OS_RELEASE_TABLE + DPKG_TABLE + APK_TABLE + PYTHON_TABLE + NPM_TABLE
    analyzers = [kind() for kind in OURS]
    for path, mode, _ in tables:
        assert sum(a.required(path, mode) for a in analyzers) <= 1, path
