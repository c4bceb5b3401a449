"""OSV ecosystem strings and package-name normalisation.

The OSV schema (https://ossf.github.io/osv-schema/#affectedpackage-field, "Defined ecosystems")
names ecosystems with a base name and, for distributions, a release suffix after ``:``
(``Debian:12``, ``Alpine:v3.20``, ``Ubuntu:22.04:LTS``, ``Ubuntu:Pro:18.04:LTS``,
``Red Hat:enterprise_linux:9::appstream``). The index keys records by the full ecosystem
string and by the package name normalised the way that ecosystem's package manager compares
names, so a lookup is two dict hits.
"""

from __future__ import annotations

import functools
import re
from enum import StrEnum


class FeedEcosystem(StrEnum):
    """Ecosystems the OSV bulk download publishes as ``<base>/<name>/all.zip``.

    The values are the folder names osv.dev uses (https://google.github.io/osv.dev/data/):
    the base ecosystem name exactly as in the schema.
    """

    ALMALINUX = "AlmaLinux"
    ALPINE = "Alpine"
    AZURE_LINUX = "Azure Linux"
    CHAINGUARD = "Chainguard"
    CRATES_IO = "crates.io"
    DEBIAN = "Debian"
    GO = "Go"
    MARINER = "Mariner"
    MAVEN = "Maven"
    NPM = "npm"
    NUGET = "NuGet"
    OPENSUSE = "openSUSE"
    PACKAGIST = "Packagist"
    PYPI = "PyPI"
    RED_HAT = "Red Hat"
    ROCKY_LINUX = "Rocky Linux"
    RUBYGEMS = "RubyGems"
    SUSE = "SUSE"
    UBUNTU = "Ubuntu"
    WOLFI = "Wolfi"


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:12`` -> ``Debian``; ``Red Hat:enterprise_linux:9::appstream`` -> ``Red Hat``."""
    return ecosystem.split(":", 1)[0]


_PEP503_SEPARATORS = re.compile(r"[-_.]+")


@functools.lru_cache(maxsize=1 << 16)
def normalize_name(ecosystem: str, name: str) -> str:
    """The name as the ecosystem's own tools compare it (remembered: the matcher asks for the
    same names for every image that has the package).

    * PyPI: PEP 503 (lower case, runs of ``-_.`` become one ``-``).
    * crates.io: case-insensitive and ``-``/``_`` are the same crate (crates.io index rules).
    * NuGet, Packagist: case-insensitive ids.
    * npm, Go, Maven (``group:artifact``), RubyGems and the distributions: as written; their
      names are case-sensitive (Go module paths, Maven coordinates) or lower case already.
    """
    base = base_ecosystem(ecosystem)
    text = name.strip()
    if base == "PyPI":
        return _PEP503_SEPARATORS.sub("-", text).lower()
    if base == "crates.io":
        return text.lower().replace("_", "-")
    if base in ("NuGet", "Packagist"):
        return text.lower()
    return text


def describe_ecosystem(ecosystem: str) -> str:
    """Human words for an ecosystem string: ``Alpine:v3.10`` -> ``Alpine 3.10``.

    Used in remediation sentences ("fixed in Debian 12").
    """
    parts = [part for part in ecosystem.split(":") if part]
    if not parts:
        return ecosystem
    if parts[0] == "Alpine" and len(parts) > 1:
        parts[1] = parts[1].removeprefix("v")
    if parts[0] == "Mariner":
        # osv.dev's ecosystem name; the distribution calls itself CBL-Mariner.
        parts[0] = "CBL-Mariner"
    if parts[0] == "Red Hat" and len(parts) > 2:
        # Red Hat:enterprise_linux:9::appstream -> Red Hat Enterprise Linux 9
        product = parts[1].replace("_", " ").title()
        return f"Red Hat {product} {parts[2]}"
    return " ".join(parts)
