from __future__ import annotations

import os

import pytest

from scanning.errors import BadRequest, ConfigError
from scanning.store import StorageClients, StorageSettings
from scanning.store.clients import transport_options
from scanning.store.paging import decode_token, encode_token


def test_connection_string_builds_clients_for_its_endpoints(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "DefaultEndpointsProtocol=http;AccountName=acct;"
                       "AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/acct;"
                       "BlobEndpoint=http://127.0.0.1:2/acct;QueueEndpoint=http://127.0.0.1:3/acct")
    clients = StorageClients.from_settings()
    assert (clients.table_service().url, clients.blob_service().url,
            clients.queue_service().url) == (
        "http://127.0.0.1:1/acct", "http://127.0.0.1:2/acct/", "http://127.0.0.1:3/acct/")


def test_identity_settings_use_service_uris_and_client_id(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.setenv("AzureWebJobsStorage__tableServiceUri", "https://acct.table.core.windows.net")
    monkeypatch.setenv("AzureWebJobsStorage__blobServiceUri", "https://acct.blob.core.windows.net")
    monkeypatch.setenv("AzureWebJobsStorage__clientId", "11111111-2222-3333-4444-555555555555")
    clients = StorageClients.from_settings()
    assert clients.settings == StorageSettings(
        table_service_uri="https://acct.table.core.windows.net",
        blob_service_uri="https://acct.blob.core.windows.net",
        client_id="11111111-2222-3333-4444-555555555555")
    assert (clients.table_service().url, clients.blob_service().url) == (
        "https://acct.table.core.windows.net", "https://acct.blob.core.windows.net/")
    assert type(clients.credential()).__name__ == "DefaultAzureCredential"


def test_identity_without_uri_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    monkeypatch.delenv("AzureWebJobsStorage__queueServiceUri", raising=False)
    with pytest.raises(ConfigError, match="AzureWebJobsStorage__queueServiceUri"):
        StorageClients.from_settings().queue_service()


def test_paging_token_round_trips() -> None:
    service = {"PartitionKey": "p|1", "RowKey": "r~2F"}
    assert decode_token(encode_token(service, 3)) == (service, 3)


@pytest.mark.parametrize("token", ["!!!", "e30", "eyJ2IjoxLCJza2lwIjotMX0"])
def test_foreign_paging_token_is_a_bad_request(token: str) -> None:
    with pytest.raises(BadRequest, match="continuation token"):
        decode_token(token)


def _clear_requests_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.lower() in ("http_proxy", "https_proxy", "all_proxy", "no_proxy",
                            "requests_ca_bundle", "curl_ca_bundle"):
            monkeypatch.delenv(name)


def test_clients_do_not_read_the_environment_per_request(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_requests_environment(monkeypatch)
    assert transport_options() == {"use_env_settings": False}


def test_ca_bundle_of_the_environment_is_given_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_requests_environment(monkeypatch)
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/curl.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/requests.pem")
    assert transport_options() == {"use_env_settings": False,
                                   "connection_verify": "/etc/ssl/requests.pem"}


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "http_proxy", "NO_PROXY"])
def test_proxy_in_the_environment_keeps_the_per_request_reads(
        monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    _clear_requests_environment(monkeypatch)
    monkeypatch.setenv(name, "http://proxy.example:3128")
    assert transport_options() == {}


def test_clients_are_built_with_the_transport_options(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear_requests_environment(monkeypatch)
    clients = StorageClients(settings=StorageSettings(
        connection_string="DefaultEndpointsProtocol=http;AccountName=acct;AccountKey=a2V5;"
                          "QueueEndpoint=http://127.0.0.1:3/acct"))
    transport = clients.queue_service()._pipeline._transport
    assert transport._use_env_settings is False
