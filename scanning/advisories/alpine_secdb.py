"""Alpine secdb (https://secdb.alpinelinux.org/) to OSV records.

The secdb publishes one document per release and repository (``v3.10/main.yaml``, also served
as ``.json``)::

    distroversion: v3.10
    reponame: main
    packages:
      - pkg:
          name: openssl            # the aports origin (source package)
          secfixes:
            1.1.1d-r0: [CVE-2019-1547, CVE-2019-1549]

Each ``secfixes`` key is the first package release of that branch that carries the fix, so a
CVE listed under version ``V`` becomes an OSV range ``introduced 0, fixed V`` in the ecosystem
``Alpine:<distroversion>``. One OSV record per (release, package, CVE) is written, with the id
``ALPINE-<release>-<package>-<CVE>``, a shape osv.dev does not use, so records from this adapter
never collide with osv.dev's own Alpine records; the CVE is the first alias.

The key ``0`` is the aports secfixes convention for "this CVE never affected this package
in Alpine" (e.g. it affects another distribution's build). Read literally as ``fixed 0`` it
matches nothing, since no installed version is below ``0``; we write no record at all, which
gives the same answer without noise. (The search tool gave no Trivy/Grype source to cite here.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from scanning.errors import AdvisoryError

MAX_SECDB_BYTES = 64 * 1024 * 1024
_NOT_AFFECTED_KEYS = frozenset({"0"})
_LOADER: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


def iter_secdb_osv(path: Path) -> Iterator[dict[str, Any]]:
    """OSV records for every secdb document under ``path`` (one file or a folder of them)."""
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not p.is_symlink() and p.suffix in (".yaml", ".yml", ".json")
        )
    elif path.is_file():
        files = [path]
    else:
        raise AdvisoryError(f"{path}: no such file or folder")
    for file in files:
        if file.stat().st_size > MAX_SECDB_BYTES:
            raise AdvisoryError(f"{file}: larger than {MAX_SECDB_BYTES} bytes")
        yield from secdb_to_osv(file.read_bytes(), str(file))


def secdb_to_osv(data: bytes, where: str) -> Iterator[dict[str, Any]]:
    """OSV records for one secdb document (YAML or JSON; JSON is a subset of YAML)."""
    try:
        text = data.decode("utf-8-sig")
        # BaseLoader keeps every scalar a string: a secfixes key "2.10" must not become 2.1.
        document = json.loads(text) if where.endswith(".json") else yaml.load(text, Loader=_LOADER)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise AdvisoryError(f"{where}: not a valid Alpine secdb document: {error}") from error
    if not isinstance(document, dict):
        raise AdvisoryError(f"{where}: an Alpine secdb document must be a mapping")
    release = str(document.get("distroversion") or "").strip()
    if not release.startswith("v"):
        raise AdvisoryError(f"{where}: 'distroversion' must look like v3.10, got {release!r}")
    repository = str(document.get("reponame") or "")
    packages = document.get("packages") or []
    if not isinstance(packages, list):
        raise AdvisoryError(f"{where}: 'packages' must be a list")
    ecosystem = f"Alpine:{release}"
    for entry in packages:
        pkg = entry.get("pkg") if isinstance(entry, dict) else None
        if not isinstance(pkg, dict) or not isinstance(pkg.get("name"), str):
            raise AdvisoryError(f"{where}: every package entry needs pkg.name")
        name = pkg["name"]
        secfixes = pkg.get("secfixes") or {}
        if not isinstance(secfixes, dict):
            raise AdvisoryError(f"{where}: {name}: 'secfixes' must be a mapping")
        for version_key, ids in secfixes.items():
            fixed = str(version_key).strip()
            if fixed in _NOT_AFFECTED_KEYS:
                continue
            for vulnerability_id in _cve_ids(ids, where, name):
                yield _record(ecosystem, repository, name, fixed, vulnerability_id)


def _cve_ids(ids: object, where: str, package: str) -> Iterator[str]:
    if ids is None:
        return
    if not isinstance(ids, list):
        raise AdvisoryError(f"{where}: {package}: a secfixes entry must be a list of ids")
    for item in ids:
        # Entries are usually one id; some carry two ("CVE-2019-1 CVE-2019-2") or a note after
        # the id ("CVE-2018-1000001 (bundled)"): the ids are the tokens that look like ids.
        for token in str(item).split():
            if token.startswith(("CVE-", "GHSA-", "XSA-", "ZBX-", "BZ-")):
                yield token


def _record(
    ecosystem: str, repository: str, name: str, fixed: str, vulnerability_id: str
) -> dict[str, Any]:
    release = ecosystem.split(":", 1)[1]
    return {
        "id": f"ALPINE-{release}-{name}-{vulnerability_id}",
        "aliases": [vulnerability_id],
        "summary": f"{vulnerability_id} in {name}",
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": name},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
                "database_specific": {"source": "alpine-secdb", "repository": repository},
            }
        ],
        "references": [
            {"type": "ADVISORY", "url": f"https://security.alpinelinux.org/vuln/{vulnerability_id}"}
        ],
    }
