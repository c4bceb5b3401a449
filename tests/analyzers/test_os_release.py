"""OS release files: one OSInfo per file, and best_os precedence between them.

The release texts below are the files as the named images ship them (transcribed).
"""

from __future__ import annotations

import io

import pytest

from scanning.analyzers.base import AnalyzerInput, AnalyzerOutput
from scanning.analyzers.os_release import OSReleaseAnalyzer, best_os, parse_release_file
from scanning.analyzers.records import EntryLog
from scanning.errors import AnalyzerError
from scanning.model import OSInfo

ANALYZER = OSReleaseAnalyzer()


def analyze(path: str, text: str | bytes) -> OSInfo | None:
    data = text.encode() if isinstance(text, str) else text
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data))).os


DEBIAN_12 = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""
DEBIAN_SID = """PRETTY_NAME="Debian GNU/Linux trixie/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=trixie
ID=debian
"""
UBUNTU_2204 = """PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
"""
UBUNTU_1604 = """NAME="Ubuntu"
VERSION="16.04.7 LTS (Xenial Xerus)"
ID=ubuntu
ID_LIKE=debian
PRETTY_NAME="Ubuntu 16.04.7 LTS"
VERSION_ID="16.04"
UBUNTU_CODENAME=xenial
"""
ALPINE_310 = """NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.10.4
PRETTY_NAME="Alpine Linux v3.10"
HOME_URL="https://alpinelinux.org/"
"""
RHEL_9 = """NAME="Red Hat Enterprise Linux"
VERSION="9.3 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.3"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.3 (Plow)"
"""
MARINER_2 = """NAME="Common Base Linux Mariner"
VERSION="2.0.20240123"
ID=mariner
VERSION_ID="2.0"
PRETTY_NAME="CBL-Mariner/Linux"
"""
AZURE_LINUX_3 = """NAME="Microsoft Azure Linux"
VERSION="3.0.20240727"
ID=azurelinux
VERSION_ID="3.0"
PRETTY_NAME="Microsoft Azure Linux 3.0"
"""
WOLFI = """ID=wolfi
NAME="Wolfi"
PRETTY_NAME="Wolfi"
VERSION_ID="20230201"
HOME_URL="https://wolfi.dev"
"""
CHAINGUARD = """ID=chainguard
NAME="Chainguard"
PRETTY_NAME="Chainguard"
VERSION_ID="20230214"
"""
SLES_15 = """NAME="SLES"
VERSION="15-SP5"
VERSION_ID="15.5"
PRETTY_NAME="SUSE Linux Enterprise Server 15 SP5"
ID="sles"
ID_LIKE="suse"
"""
OPENSUSE_LEAP = """NAME="openSUSE Leap"
VERSION="15.5"
ID="opensuse-leap"
ID_LIKE="suse opensuse"
VERSION_ID="15.5"
PRETTY_NAME="openSUSE Leap 15.5"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            DEBIAN_12,
            OSInfo(
                id="debian",
                version_id="12",
                codename="bookworm",
                pretty_name="Debian GNU/Linux 12 (bookworm)",
            ),
        ),
        (
            DEBIAN_SID,
            OSInfo(id="debian", codename="trixie", pretty_name="Debian GNU/Linux trixie/sid"),
        ),
        (
            UBUNTU_2204,
            OSInfo(
                id="ubuntu", version_id="22.04", codename="jammy", pretty_name="Ubuntu 22.04.4 LTS"
            ),
        ),
        (
            UBUNTU_1604,
            OSInfo(
                id="ubuntu", version_id="16.04", codename="xenial", pretty_name="Ubuntu 16.04.7 LTS"
            ),
        ),
        (ALPINE_310, OSInfo(id="alpine", version_id="3.10.4", pretty_name="Alpine Linux v3.10")),
        (
            RHEL_9,
            OSInfo(id="rhel", version_id="9.3", pretty_name="Red Hat Enterprise Linux 9.3 (Plow)"),
        ),
        (MARINER_2, OSInfo(id="mariner", version_id="2.0", pretty_name="CBL-Mariner/Linux")),
        (
            AZURE_LINUX_3,
            OSInfo(id="azurelinux", version_id="3.0", pretty_name="Microsoft Azure Linux 3.0"),
        ),
        (WOLFI, OSInfo(id="wolfi", version_id="20230201", pretty_name="Wolfi")),
        (CHAINGUARD, OSInfo(id="chainguard", version_id="20230214", pretty_name="Chainguard")),
        (
            SLES_15,
            OSInfo(id="sles", version_id="15.5", pretty_name="SUSE Linux Enterprise Server 15 SP5"),
        ),
        (
            OPENSUSE_LEAP,
            OSInfo(id="opensuse-leap", version_id="15.5", pretty_name="openSUSE Leap 15.5"),
        ),
    ],
)
def test_os_release(text: str, expected: OSInfo) -> None:
    assert analyze("etc/os-release", text) == expected


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        ("etc/alpine-release", "3.10.4\n", OSInfo(id="alpine", version_id="3.10.4")),
        ("etc/debian_version", "10.3\n", OSInfo(id="debian", version_id="10.3")),
        ("etc/debian_version", "trixie/sid\n", OSInfo(id="debian", version_id="trixie/sid")),
        (
            "etc/redhat-release",
            "Red Hat Enterprise Linux Server release 7.9 (Maipo)\n",
            OSInfo(
                id="rhel",
                version_id="7.9",
                codename="Maipo",
                pretty_name="Red Hat Enterprise Linux Server release 7.9 (Maipo)",
            ),
        ),
        (
            "etc/centos-release",
            "CentOS Linux release 7.9.2009 (Core)\n",
            OSInfo(
                id="centos",
                version_id="7.9.2009",
                codename="Core",
                pretty_name="CentOS Linux release 7.9.2009 (Core)",
            ),
        ),
        (
            "etc/centos-release",
            "CentOS Stream release 9\n",
            OSInfo(id="centos", version_id="9", pretty_name="CentOS Stream release 9"),
        ),
        (
            "etc/rocky-release",
            "Rocky Linux release 8.5 (Green Obsidian)\n",
            OSInfo(
                id="rocky",
                version_id="8.5",
                codename="Green Obsidian",
                pretty_name="Rocky Linux release 8.5 (Green Obsidian)",
            ),
        ),
        (
            "etc/almalinux-release",
            "AlmaLinux release 9.3 (Shamrock Pampas Cat)\n",
            OSInfo(
                id="almalinux",
                version_id="9.3",
                codename="Shamrock Pampas Cat",
                pretty_name="AlmaLinux release 9.3 (Shamrock Pampas Cat)",
            ),
        ),
        (
            "etc/oracle-release",
            "Oracle Linux Server release 8.9\n",
            OSInfo(id="ol", version_id="8.9", pretty_name="Oracle Linux Server release 8.9"),
        ),
        (
            "etc/fedora-release",
            "Fedora release 39 (Thirty Nine)\n",
            OSInfo(
                id="fedora",
                version_id="39",
                codename="Thirty Nine",
                pretty_name="Fedora release 39 (Thirty Nine)",
            ),
        ),
        (
            "etc/system-release",
            "Amazon Linux release 2 (Karoo)\n",
            OSInfo(
                id="amzn",
                version_id="2",
                codename="Karoo",
                pretty_name="Amazon Linux release 2 (Karoo)",
            ),
        ),
        (
            "etc/mariner-release",
            "CBL-Mariner 2.0.20220226\nDISTRIB_CODENAME=Mariner\n",
            OSInfo(id="mariner", version_id="2.0"),
        ),
        (
            "etc/lsb-release",
            "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=18.04\nDISTRIB_CODENAME=bionic\n"
            'DISTRIB_DESCRIPTION="Ubuntu 18.04.1 LTS"\n',
            OSInfo(
                id="ubuntu", version_id="18.04", codename="bionic", pretty_name="Ubuntu 18.04.1 LTS"
            ),
        ),
        (
            "etc/SuSE-release",
            "SUSE Linux Enterprise Server 12 (x86_64)\nVERSION = 12\nPATCHLEVEL = 3\n",
            OSInfo(
                id="sles", version_id="12.3", pretty_name="SUSE Linux Enterprise Server 12 (x86_64)"
            ),
        ),
        (
            "etc/SuSE-release",
            "openSUSE 13.2 (x86_64)\nVERSION = 13.2\nCODENAME = Harlequin\n",
            OSInfo(
                id="opensuse",
                version_id="13.2",
                codename="Harlequin",
                pretty_name="openSUSE 13.2 (x86_64)",
            ),
        ),
    ],
)
def test_specific_release_file(path: str, text: str, expected: OSInfo) -> None:
    assert analyze(path, text) == expected


def test_unknown_distribution_in_redhat_release_gives_no_os() -> None:
    assert analyze("etc/redhat-release", "Frobnix Linux release 1.0 (Zap)\n") is None


def test_quoting_and_escapes_follow_os_release_5() -> None:
    text = 'ID=x\nPRETTY_NAME="say \\"hi\\" \\$HOME \\\\"\nVERSION_ID=\'1.0\'\n# comment\n\n'
    assert analyze("etc/os-release", text) == OSInfo(
        id="x", version_id="1.0", pretty_name='say "hi" $HOME \\'
    )


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        ("etc/os-release", "", "no ID"),
        ("etc/os-release", "NAME=foo\n", "no ID"),
        # The only ID line is skipped (its quotes do not close): no ID is left.
        ("etc/os-release", 'ID="debian\n', "no ID"),
        ("etc/alpine-release", "", "not a version"),
        ("etc/alpine-release", "3.10 4\n", "not a version"),
        ("etc/redhat-release", "garbage\n", "not '<name> release <version>"),
        ("etc/mariner-release", "Mariner\n", "not 'CBL-Mariner <version>'"),
        ("etc/SuSE-release", "SUSE Linux\n", "no VERSION"),
        ("etc/lsb-release", "DISTRIB_RELEASE=1\n", "no DISTRIB_ID"),
    ],
)
def test_malformed_release_file_is_an_analyzer_error(path: str, text: str, message: str) -> None:
    with pytest.raises(AnalyzerError, match=message):
        analyze(path, text)


def analyze_output(path: str, text: str) -> AnalyzerOutput:
    data = text.encode()
    return ANALYZER.analyze(AnalyzerInput(path=path, size=len(data), reader=io.BytesIO(data)))


def test_line_that_is_not_an_assignment_is_skipped_with_a_warning() -> None:
    text = DEBIAN_12.replace("ID=debian\n", "ID=debian\nthis is not an assignment\n")
    output = analyze_output("etc/os-release", text)
    assert output.os == analyze("etc/os-release", DEBIAN_12)
    assert output.warnings == (
        "os-release: etc/os-release line 7: not a KEY=value assignment; entry skipped",
    )


def test_line_with_unbalanced_quotes_is_skipped_with_a_warning() -> None:
    text = DEBIAN_12.replace('VERSION_ID="12"', 'VERSION_ID="12')
    output = analyze_output("etc/os-release", text)
    assert output.os == OSInfo(id="debian", codename="bookworm",
                               pretty_name="Debian GNU/Linux 12 (bookworm)")
    assert output.warnings == (
        "os-release: etc/os-release line 3: unbalanced quotes in VERSION_ID; entry skipped",
    )


def test_non_utf8_pretty_name_is_kept_with_replacement_character() -> None:
    info = analyze("etc/os-release", b"ID=x\nPRETTY_NAME=caf\xe9\n")
    assert info == OSInfo(id="x", pretty_name="caf\ufffd")


def test_oversized_release_file_is_an_error() -> None:
    data = b"ID=x\n" + b"#" * ANALYZER.max_file_size
    with pytest.raises(AnalyzerError, match="over the"):
        analyze("etc/os-release", data)


def os_of(path: str, text: str) -> OSInfo:
    info = parse_release_file(path, text, EntryLog("os-release", path))
    assert info is not None
    return info


def test_best_os_prefers_etc_os_release() -> None:
    found = {
        "etc/debian_version": os_of("etc/debian_version", "bookworm/sid\n"),
        "etc/lsb-release": os_of("etc/lsb-release", "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=22.04\n"),
        "usr/lib/os-release": os_of("usr/lib/os-release", DEBIAN_12),
        "etc/os-release": os_of("etc/os-release", UBUNTU_2204),
    }
    assert best_os(found) == found["etc/os-release"]


def test_best_os_distroless_has_only_usr_lib_os_release() -> None:
    found = {
        "usr/lib/os-release": os_of("usr/lib/os-release", DEBIAN_12),
        "etc/debian_version": os_of("etc/debian_version", "12.5\n"),
    }
    assert best_os(found) == OSInfo(
        id="debian",
        version_id="12",
        codename="bookworm",
        pretty_name="Debian GNU/Linux 12 (bookworm)",
    )


def test_best_os_debian_sid_takes_version_from_debian_version() -> None:
    found = {
        "etc/os-release": os_of("etc/os-release", DEBIAN_SID),
        "etc/debian_version": os_of("etc/debian_version", "trixie/sid\n"),
    }
    assert best_os(found) == OSInfo(
        id="debian",
        version_id="trixie/sid",
        codename="trixie",
        pretty_name="Debian GNU/Linux trixie/sid",
    )


def test_best_os_without_os_release_prefers_specific_over_generic_files() -> None:
    found = {
        "etc/redhat-release": os_of(
            "etc/redhat-release", "Rocky Linux release 8.5 (Green Obsidian)"
        ),
        "etc/rocky-release": os_of("etc/rocky-release", "Rocky Linux release 8.5 (Green Obsidian)"),
        "etc/system-release": os_of(
            "etc/system-release", "Rocky Linux release 8.5 (Green Obsidian)"
        ),
    }
    assert best_os(found) == found["etc/rocky-release"]


def test_best_os_old_ubuntu_prefers_lsb_release_over_debian_version() -> None:
    found = {
        "etc/debian_version": os_of("etc/debian_version", "stretch/sid\n"),
        "etc/lsb-release": os_of("etc/lsb-release", "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\n"),
    }
    assert best_os(found) == OSInfo(id="ubuntu", version_id="14.04")


def test_best_os_of_nothing_is_none() -> None:
    assert best_os({}) is None


def test_best_os_ignores_files_it_does_not_know() -> None:
    assert best_os({"etc/issue": OSInfo(id="x")}) is None


# --- The Alpine branch: etc/apk/repositories ---------------------------------------------

ALPINE_310 = OSInfo(id="alpine", version_id="3.10.4")
# The file as the alpine:3.10 image ships it (../shared/testdata/images/trivy-fanal/alpine-310).
REPOSITORIES_310 = ("http://dl-cdn.alpinelinux.org/alpine/v3.10/main\n"
                    "http://dl-cdn.alpinelinux.org/alpine/v3.10/community\n")


def test_required_asks_for_apk_repositories() -> None:
    assert OSReleaseAnalyzer().required("etc/apk/repositories", 0o100644)


@pytest.mark.parametrize(("text", "branch"), [
    (REPOSITORIES_310, "v3.10"),
    ("https://dl-cdn.alpinelinux.org/alpine/v3.9/main\n"
     "https://dl-cdn.alpinelinux.org/alpine/v3.12/community\n", "v3.12"),
    ("https://dl-cdn.alpinelinux.org/alpine/v3.20/main\n"
     "https://dl-cdn.alpinelinux.org/alpine/edge/testing\n", "edge"),
    # Tagged repositories serve only packages asked for by tag; comments and local paths say
    # nothing about a branch.
    ("# https://dl-cdn.alpinelinux.org/alpine/edge/main\n/media/cdrom/apks\n"
     "@edge https://dl-cdn.alpinelinux.org/alpine/edge/main\n"
     "https://mirror.example/alpine/v3.18/main/\n", "v3.18"),
    ("/media/cdrom/apks\n", ""),
])
def test_apk_repositories_give_the_newest_branch(text: str, branch: str) -> None:
    expected = OSInfo(id="alpine", branch=branch) if branch else None
    entries = EntryLog("os-release", "etc/apk/repositories")
    assert parse_release_file("etc/apk/repositories", text, entries) == expected


def test_best_os_alpine_repositories_of_its_own_branch_change_nothing() -> None:
    found = {"etc/alpine-release": ALPINE_310,
             "etc/apk/repositories": os_of("etc/apk/repositories", REPOSITORIES_310)}
    assert best_os(found) == ALPINE_310


def test_best_os_alpine_newer_branch_in_repositories_is_the_branch() -> None:
    found = {"etc/alpine-release": ALPINE_310,
             "etc/apk/repositories": OSInfo(id="alpine", branch="v3.12")}
    assert best_os(found) == OSInfo(id="alpine", version_id="3.10.4", branch="v3.12")


def test_best_os_alpine_older_branch_in_repositories_is_ignored() -> None:
    found = {"etc/alpine-release": ALPINE_310,
             "etc/apk/repositories": OSInfo(id="alpine", branch="v3.9")}
    assert best_os(found) == ALPINE_310


def test_best_os_alpine_edge_in_repositories_is_the_branch() -> None:
    found = {"etc/alpine-release": ALPINE_310,
             "etc/apk/repositories": OSInfo(id="alpine", branch="edge")}
    assert best_os(found) == OSInfo(id="alpine", version_id="3.10.4", branch="edge")


def test_best_os_apk_repositories_alone_is_no_os() -> None:
    assert best_os({"etc/apk/repositories": OSInfo(id="alpine", branch="v3.12")}) is None
