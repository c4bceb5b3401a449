"""``Store``: every table and container of one namespace, built from one set of clients."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient

from scanning.config import setting
from scanning.model import PlatformFindings
from scanning.store.billing import BillingTable
from scanning.store.blobs import BlobStore
from scanning.store.clients import StorageClients
from scanning.store.entities import storage_errors
from scanning.store.findings import (
    Assessment,
    FindingFilter,
    FindingHit,
    FindingTable,
)
from scanning.store.images import ImageRecord, ImageTable
from scanning.store.keys import validate_prefix
from scanning.store.paging import Page
from scanning.store.pulls import PullLedgerEntry, PullTable
from scanning.store.rule_table import RuleTable
from scanning.store.scans import ScanTable
from scanning.store.schema import DASHBOARD_SECRET_ROW, check_schema, stored_secret

DEFAULT_PREFIX = "acrscan"
TABLES = ("images", "tags", "scans", "pulls", "billing", "billingdigests", "rules", "meta")


class Store:
    """The persistence layer. Tables are ``<prefix><name>`` (``acrscanimages``…), containers
    ``<prefix>-<kind>``; a different prefix is a separate namespace (tests use a fresh one).

    Call ``create()`` once (idempotent) before first use.
    """

    def __init__(self, clients: StorageClients, prefix: str = DEFAULT_PREFIX) -> None:
        self.clients = clients
        self.prefix = validate_prefix(prefix)
        service = clients.table_service()

        def table(name: str) -> TableClient:
            return service.get_table_client(self.table_name(name))

        self.images = ImageTable(table("images"), table("tags"))
        self.scans = ScanTable(table("scans"))
        self.pulls = PullTable(table("pulls"))
        self.billing = BillingTable(table("billing"), table("billingdigests"))
        self.rules = RuleTable(table("rules"))
        self.blobs = BlobStore(clients.blob_service(), self.prefix)
        self.findings = FindingTable(self.images, self.blobs)
        self._meta = table("meta")
        self._dashboard_secret = ""  # read once: it never changes once made

    @classmethod
    def from_settings(cls, prefix: str | None = None) -> Store:
        """The store the settings name: ``AzureWebJobsStorage`` and ``STORE_PREFIX``."""
        return cls(StorageClients.from_settings(), prefix or setting("STORE_PREFIX"))

    @classmethod
    def from_connection_string(cls, connection_string: str,
                               prefix: str = DEFAULT_PREFIX) -> Store:
        return cls(StorageClients.from_connection_string(connection_string), prefix)

    def table_name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def create(self) -> None:
        """Create every table and container that does not exist yet, and check that the store
        is of this code's layout (``schema``; ConfigError when it is not)."""
        service = self.clients.table_service()
        for name in TABLES:
            with storage_errors(f"creating table {self.table_name(name)}"), contextlib.suppress(
                ResourceExistsError
            ):
                service.create_table(self.table_name(name))
        self.blobs.create_containers()
        check_schema(self._meta, self.images.table)

    def dashboard_secret(self) -> str:
        """Signs the dashboard's CSRF tokens when no setting gives a key or secret; read from
        the meta table once per store (every dashboard view needs it)."""
        if not self._dashboard_secret:
            self._dashboard_secret = stored_secret(self._meta, DASHBOARD_SECRET_ROW)
        return self._dashboard_secret

    def drop(self) -> None:
        """Delete every table and container of this namespace (tests, teardown)."""
        service = self.clients.table_service()
        for name in TABLES:
            with storage_errors(f"deleting table {self.table_name(name)}"):
                service.delete_table(self.table_name(name))
        self.blobs.delete_containers()

    # ------------------------------------------------------------ operations across tables

    def save_assessment(self, registry: str, repository: str, digest: str,
                        assessment: Assessment) -> ImageRecord:
        """Replace the image's findings and status atomically for readers (``findings``)."""
        self.findings.save(registry, repository, digest, assessment)
        return self.images.get(registry, repository, digest)

    def findings_of(self, registry: str, repository: str,
                    digest: str) -> tuple[PlatformFindings, ...]:
        return self.findings.current(registry, repository, digest)

    def query_findings(self, filters: FindingFilter | None = None, page_size: int = 100,
                       token: str | None = None) -> Page[FindingHit]:
        return self.findings.query(filters or FindingFilter(), page_size, token)

    def record_pull(self, *, registry: str, repository: str, digest: str, at: datetime,
                    count: int = 1) -> PullLedgerEntry:
        """Add to the pull ledger and move the image's ``last_pulled`` forward."""
        entry = self.pulls.record_pull(registry=registry, repository=repository, digest=digest,
                                       at=at, count=count)
        self.images.set_last_pulled(registry, repository, digest, entry.last_pulled)
        return entry

    def images_pulled_since(self, since: datetime) -> Iterator[PullLedgerEntry]:
        return self.pulls.pulled_since(since)
