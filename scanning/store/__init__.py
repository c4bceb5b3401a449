"""Table and Blob Storage persistence (Azure Storage; Azurite locally).

Start with ``Store`` (``store.py``): one object per storage namespace with one attribute per
table: ``images`` (and tag history), ``findings`` (sub-assessments, kept with the image row
and replaced with it), ``scans`` (history), ``pulls`` (ledger), ``billing`` (one record per
digest, ever), ``rules`` (disable rules) and ``blobs`` (inventories, layer results). Key
encoding is in ``keys``, paging in ``paging``, client construction from the app settings in
``clients``; the queue of notifications in ``queue``, the published advisory index in
``advisory_index``, the layer cache in ``layer_cache``. Every Azure Storage call of the
project is in this package. It persists and queries only: it imports none of the rules,
notifications, matching, assessment or service (those decide; the store keeps).
"""

from scanning.store.billing import BILLABLE_TRIGGERS, BillingRecord, BillingResult, BillingSummary
from scanning.store.blobs import BlobKind
from scanning.store.clients import StorageClients, StorageSettings
from scanning.store.findings import (
    Assessment,
    FindingFilter,
    FindingHit,
    SaveResult,
)
from scanning.store.images import ImageFilter, ImageRecord, TagEvent
from scanning.store.paging import Page
from scanning.store.pulls import PullLedgerEntry
from scanning.store.scans import ScanFilter, ScanRecord, new_scan_id
from scanning.store.store import DEFAULT_PREFIX, Store

__all__ = [
    "BILLABLE_TRIGGERS",
    "DEFAULT_PREFIX",
    "Assessment",
    "BillingRecord",
    "BillingResult",
    "BillingSummary",
    "BlobKind",
    "FindingFilter",
    "FindingHit",
    "ImageFilter",
    "ImageRecord",
    "Page",
    "PullLedgerEntry",
    "SaveResult",
    "ScanFilter",
    "ScanRecord",
    "StorageClients",
    "StorageSettings",
    "Store",
    "TagEvent",
    "new_scan_id",
]
