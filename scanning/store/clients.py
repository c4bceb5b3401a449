"""One factory for the Table, Blob and Queue service clients, from the app settings.

The Functions host's own storage setting ``AzureWebJobsStorage`` is used either way
(https://learn.microsoft.com/azure/azure-functions/functions-reference#connecting-to-host-storage-with-an-identity):

* locally it is a connection string (Azurite's well-known development account);
* in Azure it is identity-based: ``AzureWebJobsStorage__tableServiceUri``,
  ``__blobServiceUri`` and ``__queueServiceUri`` name the endpoints, and
  ``DefaultAzureCredential`` authenticates as the user-assigned managed identity whose client
  id is ``AzureWebJobsStorage__clientId`` (or ``AZURE_CLIENT_ID``).

A connection string wins when both are set. Clients are created lazily and cached, so a
function that only needs blobs never builds a table client.

Unless the environment names a proxy, the clients' HTTP sessions do not read the environment
on every request (``requests`` otherwise looks for a ``.netrc`` file and scans the environment
for proxies and CA bundles per call: ~0.4 ms of CPU a request, and a rescan makes one per
notification); a CA bundle in ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` is read once instead.
With a proxy set they keep reading it as ``requests`` always has.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from scanning.config import setting
from scanning.errors import ConfigError

# Proxy variables ``requests`` reads from the environment (any case).
_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def transport_options() -> dict[str, Any]:
    """The clients' transport keywords: no per-request environment reads unless a proxy is
    set; a CA bundle named by ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` is still used
    (given once, as ``requests`` would take it per request)."""
    if {name.lower() for name in os.environ}.intersection(_PROXY_VARIABLES):
        return {}
    options: dict[str, Any] = {"use_env_settings": False}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        options["connection_verify"] = bundle
    return options


@dataclass(frozen=True, slots=True, kw_only=True)
class StorageSettings:
    """Where storage is and how to authenticate; build with ``from_settings``."""

    connection_string: str = ""
    table_service_uri: str = ""
    blob_service_uri: str = ""
    queue_service_uri: str = ""
    client_id: str = ""

    @classmethod
    def from_settings(cls) -> StorageSettings:
        return cls(
            connection_string=setting("AzureWebJobsStorage"),
            table_service_uri=setting("AzureWebJobsStorage__tableServiceUri"),
            blob_service_uri=setting("AzureWebJobsStorage__blobServiceUri"),
            queue_service_uri=setting("AzureWebJobsStorage__queueServiceUri"),
            client_id=setting("AzureWebJobsStorage__clientId") or setting("AZURE_CLIENT_ID"),
        )

    @property
    def uses_identity(self) -> bool:
        return not self.connection_string


@dataclass(slots=True, kw_only=True)
class StorageClients:
    """Lazily built service clients for one storage account."""

    settings: StorageSettings
    _credential: Any = field(default=None, repr=False)
    _table: TableServiceClient | None = field(default=None, repr=False)
    _blob: BlobServiceClient | None = field(default=None, repr=False)
    _queue: QueueServiceClient | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls) -> StorageClients:
        return cls(settings=StorageSettings.from_settings())

    @classmethod
    def from_connection_string(cls, connection_string: str) -> StorageClients:
        return cls(settings=StorageSettings(connection_string=connection_string))

    def credential(self) -> Any:
        """The ``DefaultAzureCredential`` shared by the three clients (identity mode only)."""
        if self._credential is None:
            # Imported here: the local stack never needs azure-identity's startup cost.
            from azure.identity import DefaultAzureCredential

            client_id = self.settings.client_id or None
            self._credential = DefaultAzureCredential(managed_identity_client_id=client_id)
        return self._credential

    def _endpoint(self, uri: str, name: str) -> str:
        if not uri:
            raise ConfigError(
                f"storage is not configured: set AzureWebJobsStorage (a connection string) "
                f"or AzureWebJobsStorage__{name}"
            )
        return uri

    def table_service(self) -> TableServiceClient:
        if self._table is None:
            if self.settings.connection_string:
                self._table = TableServiceClient.from_connection_string(
                    self.settings.connection_string, **transport_options()
                )
            else:
                endpoint = self._endpoint(self.settings.table_service_uri, "tableServiceUri")
                self._table = TableServiceClient(endpoint=endpoint, credential=self.credential(),
                                                 **transport_options())
        return self._table

    def blob_service(self) -> BlobServiceClient:
        if self._blob is None:
            if self.settings.connection_string:
                self._blob = BlobServiceClient.from_connection_string(
                    self.settings.connection_string, **transport_options()
                )
            else:
                endpoint = self._endpoint(self.settings.blob_service_uri, "blobServiceUri")
                self._blob = BlobServiceClient(account_url=endpoint, credential=self.credential(),
                                               **transport_options())
        return self._blob

    def queue_service(self) -> QueueServiceClient:
        if self._queue is None:
            if self.settings.connection_string:
                self._queue = QueueServiceClient.from_connection_string(
                    self.settings.connection_string, **transport_options()
                )
            else:
                endpoint = self._endpoint(self.settings.queue_service_uri, "queueServiceUri")
                self._queue = QueueServiceClient(
                    account_url=endpoint, credential=self.credential(), **transport_options()
                )
        return self._queue
