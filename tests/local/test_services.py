from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from scanning.local.services import Azurite, Registry, skopeo_copy

pytestmark = pytest.mark.integration


def test_azurite_serves_tables(azurite: Azurite) -> None:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    service.create_table_if_not_exists("probeservices")
    names = [table.name for table in service.query_tables("TableName eq 'probeservices'")]
    service.delete_table("probeservices")
    assert names == ["probeservices"]


def test_skopeo_push_to_registry_lists_the_tag(registry: Registry, testdata: Path) -> None:
    layout = testdata / "images" / "go-containerregistry" / "oci-layout-test_index_one_image"
    skopeo_copy(f"oci:{layout}", f"docker://{registry.host}/pushed/one:v1")
    with urllib.request.urlopen(f"http://{registry.host}/v2/pushed/one/tags/list") as response:
        assert json.load(response) == {"name": "pushed/one", "tags": ["v1"]}
