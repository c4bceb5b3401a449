"""Read OSV records (https://ossf.github.io/osv-schema/) from files, folders and zips.

Sources come in four shapes, all accepted by ``iter_records``:

* one ``.json`` or ``.yaml``/``.yml`` file holding one record (PyPA writes YAML);
* a JSON file holding ``{"vulns": [...]}`` or a list of records (what the osv.dev query API
  returns, e.g. the Maven samples with enumerated versions);
* a folder, walked recursively, of such files (symlinks are not followed);
* a ``.zip`` of such files: the osv.dev bulk download ``<ecosystem>/all.zip``.

Feeds are data from the network: every file and zip member is capped in size, YAML is parsed
with the safe loader, and a record that is not an object with an ``id`` is a clear
``AdvisoryError`` naming the file, never a crash deep inside the compiler.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from scanning.errors import AdvisoryError

# One OSV record is a few kilobytes; the largest real ones (kernel CVEs with enumerated versions
# in many Ubuntu releases) are a few megabytes. Anything far beyond is not an advisory.
MAX_RECORD_BYTES = 32 * 1024 * 1024
# A bulk zip of a large ecosystem (Debian, Ubuntu) holds a few hundred thousand records.
MAX_ZIP_MEMBERS = 2_000_000

_RECORD_SUFFIXES = (".json", ".yaml", ".yml")

_BaseSafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _OsvYamlLoader(_BaseSafeLoader):
    """Safe YAML (libyaml when present: 10x faster on the PyPA database) without the
    timestamp resolver: OSV dates are RFC 3339 strings and must stay the text they are."""


_OsvYamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _BaseSafeLoader.yaml_implicit_resolvers.items()
}


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Every OSV record under ``path`` (file, folder or zip), in a stable order."""
    if path.is_dir():
        yield from _iter_folder(path)
    elif path.is_file() and path.suffix.lower() == ".zip":
        yield from _iter_zip(path)
    elif path.is_file():
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise AdvisoryError(f"{path}: larger than {MAX_RECORD_BYTES} bytes")
        yield from parse_records(path.read_bytes(), str(path))
    else:
        raise AdvisoryError(f"{path}: no such file or folder")


def _iter_folder(folder: Path) -> Iterator[dict[str, Any]]:
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            file = Path(root) / name
            if name.startswith(".") or file.is_symlink():
                continue
            if file.suffix.lower() == ".zip":
                yield from _iter_zip(file)
            elif file.suffix.lower() in _RECORD_SUFFIXES:
                if file.stat().st_size > MAX_RECORD_BYTES:
                    raise AdvisoryError(f"{file}: larger than {MAX_RECORD_BYTES} bytes")
                yield from parse_records(file.read_bytes(), str(file))


def _iter_zip(path: Path) -> Iterator[dict[str, Any]]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise AdvisoryError(f"{path}: not a readable zip: {error}") from error
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            raise AdvisoryError(f"{path}: more than {MAX_ZIP_MEMBERS} members")
        for member in sorted(members, key=lambda m: m.filename):
            if not member.filename.lower().endswith(_RECORD_SUFFIXES):
                continue
            where = f"{path}!{member.filename}"
            if member.file_size > MAX_RECORD_BYTES:
                raise AdvisoryError(f"{where}: larger than {MAX_RECORD_BYTES} bytes")
            try:
                with archive.open(member) as stream:
                    # Read one byte past the cap: the header's size may lie.
                    data = stream.read(MAX_RECORD_BYTES + 1)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
                raise AdvisoryError(f"{where}: cannot read: {error}") from error
            if len(data) > MAX_RECORD_BYTES:
                raise AdvisoryError(f"{where}: larger than {MAX_RECORD_BYTES} bytes")
            yield from parse_records(data, where)


def parse_records(data: bytes, where: str) -> Iterator[dict[str, Any]]:
    """The records in one file's bytes: one record, a list, or ``{"vulns": [...]}``."""
    try:
        text = data.decode("utf-8-sig")
        if where.lower().endswith((".yaml", ".yml")):
            document = yaml.load(text, Loader=_OsvYamlLoader)
        else:
            document = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError, RecursionError) as error:
        raise AdvisoryError(f"{where}: not valid OSV JSON/YAML: {error}") from error
    if (
        isinstance(document, dict)
        and "id" not in document
        and isinstance(document.get("vulns"), list)
    ):
        items: list[Any] = document["vulns"]
    elif isinstance(document, list):
        items = document
    else:
        items = [document]
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            raise AdvisoryError(f"{where}: an OSV record must be an object with a string 'id'")
        yield item
