"""Which lookup keys differ between two indexes, and how their fingerprints are stored."""

from __future__ import annotations

import copy
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from scanning.advisories.index import (
    IndexChange,
    compile_index,
    decode_key_fingerprints,
    diff_key_fingerprints,
    encode_key_fingerprints,
    key_fingerprints,
    load_index,
    write_index,
)
from scanning.errors import AdvisoryError

BUILT = datetime(2024, 10, 10, 12, 0, tzinfo=UTC)


def _record(advisory_id: str, ecosystem: str, name: str, modified: str) -> dict[str, Any]:
    return {"id": advisory_id, "modified": modified, "affected": [{
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.0"}]}],
    }]}


def test_key_fingerprint_covers_the_ids_and_modified_times_under_the_key() -> None:
    records = [_record("X-2", "PyPI", "Some_Package", "2024-02-01T00:00:00Z"),
               _record("X-1", "PyPI", "some.package", "2024-01-01T00:00:00Z"),
               _record("A-1", "Alpine:v3.19", "musl", "2024-03-01T00:00:00Z")]
    index = key_fingerprints(compile_index(records, built=BUILT))
    moved = key_fingerprints(compile_index(
        [records[0], {**records[1], "modified": "2024-06-01T00:00:00Z"}, records[2]],
        built=BUILT))
    assert (sorted(index), [len(value) for _, value in sorted(index.items())]) == (
        [("Alpine:v3.19", "musl"), ("PyPI", "some-package")], [16, 16])
    assert diff_key_fingerprints(index, moved) == IndexChange(
        keys=frozenset({("PyPI", "some-package")}))


def test_an_index_compiled_otherwise_from_the_same_records_differs_in_those_keys() -> None:
    # Other code compiling the same records (a parser fix): no record's modified moved, but
    # one key's affected entry has other ranges and another advisory another severity.
    records = [_record("X-1", "PyPI", "ranges", "2024-01-01T00:00:00Z"),
               _record("X-2", "PyPI", "severity", "2024-01-01T00:00:00Z"),
               _record("X-3", "PyPI", "same", "2024-01-01T00:00:00Z")]
    before = compile_index(records, built=BUILT)
    after = copy.deepcopy(before)
    compiled = after.packages["PyPI"]["ranges"][0][1]["ranges"]["ranges"][0]
    compiled["events"] = [["introduced", "0"], ["fixed", "3.0"]]
    after.advisories["X-2"]["severity"] = [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N"}]
    assert diff_key_fingerprints(key_fingerprints(before), key_fingerprints(after)) == (
        IndexChange(keys=frozenset({("PyPI", "ranges"), ("PyPI", "severity")})))


def test_the_index_read_back_from_its_file_has_the_fingerprints_it_was_compiled_with(
        tmp_path: Path) -> None:
    # The refresh compares a freshly compiled index with the published one, read back.
    # A lone surrogate (which JSON allows as an escape) in an advisory's text too.
    records = [_record("X-1", "PyPI", "some.package", "2024-01-01T00:00:00Z"),
               {**_record("A-1", "Alpine:v3.19", "musl", "2024-03-01T00:00:00Z"),
                "summary": "broken \ud800 text"}]
    index = compile_index(records, built=BUILT)
    write_index(index, tmp_path / "index.idx")
    loaded = load_index(tmp_path / "index.idx")
    assert (loaded.advisories["A-1"]["summary"], key_fingerprints(loaded)) == (
        "broken \ud800 text", key_fingerprints(index))


def test_diff_lists_added_modified_and_removed_keys_and_ecosystems() -> None:
    old = key_fingerprints(compile_index([
        _record("X-1", "PyPI", "kept", "2024-01-01T00:00:00Z"),
        _record("X-2", "PyPI", "modified", "2024-01-01T00:00:00Z"),
        _record("X-3", "PyPI", "removed", "2024-01-01T00:00:00Z"),
        _record("G-1", "Go", "example.com/gone", "2024-01-01T00:00:00Z"),
    ], built=BUILT))
    new = key_fingerprints(compile_index([
        _record("X-1", "PyPI", "kept", "2024-01-01T00:00:00Z"),
        _record("X-2", "PyPI", "modified", "2024-05-01T00:00:00Z"),
        _record("X-4", "PyPI", "added", "2024-05-01T00:00:00Z"),
        _record("N-1", "npm", "left-pad", "2024-05-01T00:00:00Z"),
    ], built=BUILT))
    assert diff_key_fingerprints(old, new) == IndexChange(
        keys=frozenset({("PyPI", "modified"), ("PyPI", "removed"), ("PyPI", "added"),
                        ("Go", "example.com/gone"), ("npm", "left-pad")}),
        ecosystems=frozenset({"Go", "npm"}),
    )


def test_equal_indexes_differ_in_nothing() -> None:
    records = [_record("X-1", "PyPI", "kept", "2024-01-01T00:00:00Z")]
    first = key_fingerprints(compile_index(records, built=BUILT))
    second = key_fingerprints(compile_index(records, built=datetime(2025, 1, 1, tzinfo=UTC)))
    assert (diff_key_fingerprints(first, second), diff_key_fingerprints(first, second).empty) == (
        IndexChange(), True)


def test_fingerprints_are_stored_as_compressed_sorted_json() -> None:
    fingerprints = {("PyPI", "b"): "00000000000000bb", ("Go", "a"): "00000000000000aa"}
    assert json.loads(zlib.decompress(encode_key_fingerprints(fingerprints))) == {
        "format": "acr-scan-index-keys", "version": 1,
        "keys": [["Go", "a", "00000000000000aa"], ["PyPI", "b", "00000000000000bb"]],
    }


def test_stored_fingerprints_read_back_equal() -> None:
    fingerprints = {("PyPI", "tab\tand\nnewline"): "0123456789abcdef"}
    assert decode_key_fingerprints(encode_key_fingerprints(fingerprints)) == fingerprints


@pytest.mark.parametrize("data", [b"not zlib", zlib.compress(b'{"format": "other"}'),
                                  zlib.compress(b'{"format": "acr-scan-index-keys", '
                                                b'"keys": [["PyPI", 1, "x"]]}')])
def test_unreadable_fingerprints_are_an_advisory_error(data: bytes) -> None:
    with pytest.raises(AdvisoryError):
        decode_key_fingerprints(data)
