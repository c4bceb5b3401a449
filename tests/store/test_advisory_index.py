"""Publishing the index to Blob Storage and loading it back, on a real Azurite."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from scanning.advisories.index import compile_index, write_index
from scanning.advisories.osv import iter_records
from scanning.errors import AdvisoryError, NotFound
from scanning.local.services import Azurite
from scanning.store.advisory_index import (
    INDEX_BLOB_NAME,
    index_etag,
    index_published_at,
    index_version,
    load_index_from_blob,
    publish_index,
)

FIXTURE_RECORDS = Path(__file__).resolve().parents[1] / "matching" / "fixtures" / "osv"

pytestmark = pytest.mark.integration


def test_published_index_loads_back(azurite: Azurite, tmp_path: Path) -> None:
    index = compile_index(iter_records(FIXTURE_RECORDS), built=datetime(2024, 10, 10, tzinfo=UTC))
    write_index(index, tmp_path / "index.idx")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    publish_index(service, tmp_path / "index.idx", container="advisories-test")
    assert load_index_from_blob(service, container="advisories-test").to_json() == index.to_json()


def test_each_publish_is_a_version_readers_see(azurite: Azurite, tmp_path: Path) -> None:
    # The same file published twice: two versions (the re-assessment after each names its
    # own), each the one IndexSource reports (build time + the blob's ETag).
    index = compile_index(iter_records(FIXTURE_RECORDS), built=datetime(2024, 10, 10, tzinfo=UTC))
    write_index(index, tmp_path / "index.idx")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    versions = []
    for _ in range(2):
        published = publish_index(service, tmp_path / "index.idx", container="advisories-twice")
        versions.append((published.version, index_version(
            index.built, index_etag(service, container="advisories-twice")),
            published.index.to_json() == index.to_json()))
    assert ([(ours == theirs, same) for ours, theirs, same in versions],
            versions[0][0] != versions[1][0], versions[0][0].split("|")[0]) == (
        [(True, True), (True, True)], True, index.built)


def test_missing_index_is_a_clear_error(azurite: Azurite) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with pytest.raises(NotFound) as raised:
        load_index_from_blob(service, container="nothing-here")
    assert str(raised.value) == (
        "no advisory index published yet at nothing-here/index/current.idx: publish one with "
        "`acr-scan db publish FILE`")


def test_a_broken_file_is_not_published(azurite: Azurite, tmp_path: Path) -> None:
    broken = tmp_path / "broken.idx"
    broken.write_bytes(b"not an index")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    with pytest.raises(AdvisoryError):
        publish_index(service, broken, container="advisories-broken")


def test_publish_time_is_the_blob_write(azurite: Azurite, tmp_path: Path) -> None:
    index = compile_index(iter_records(FIXTURE_RECORDS), built=datetime(2024, 10, 10, tzinfo=UTC))
    write_index(index, tmp_path / "index.idx")
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    publish_index(service, tmp_path / "index.idx", container="advisories-published-at")
    written = service.get_blob_client("advisories-published-at", INDEX_BLOB_NAME) \
        .get_blob_properties().last_modified
    assert index_published_at(service, container="advisories-published-at") == written


def test_publish_time_of_no_index_is_none(azurite: Azurite) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    assert index_published_at(service, container="nothing-published") is None
