"""Settings, read from the environment (Azure app settings) with documented defaults.

Every name here is set by ``infra/main.bicep``; a test checks that. Locally the same names come
from the environment or the git-ignored ``local.settings.json`` (see ``scanning/local``).
"""

from __future__ import annotations

import os

from scanning.errors import ConfigError

# name -> default ("" means unset / feature off)
SETTINGS: dict[str, str] = {
    # Storage: a connection string locally (Azurite); in Azure, identity-based connections use
    # AzureWebJobsStorage__blobServiceUri / __queueServiceUri / __tableServiceUri instead.
    "AzureWebJobsStorage": "",
    "AzureWebJobsStorage__blobServiceUri": "",
    "AzureWebJobsStorage__queueServiceUri": "",
    "AzureWebJobsStorage__tableServiceUri": "",
    "AzureWebJobsStorage__clientId": "",
    # Client id of the user-assigned managed identity (DefaultAzureCredential reads it).
    "AZURE_CLIENT_ID": "",
    # Namespace of the app's tables and containers (tables "<prefix>images"…); tests use their own.
    "STORE_PREFIX": "acrscan",
    # Advisories: OSV bulk base URL (https mirror, or file:///path for air-gapped copies).
    "ADVISORY_FEED_URL": "https://osv-vulnerabilities.storage.googleapis.com",
    "ADVISORY_ECOSYSTEMS": "",
    "ADVISORY_CONTAINER": "advisories",
    # Azure Linux / CBL-Mariner OVAL files (<base>/cbl-mariner-2.0-oval.xml, …): Microsoft's
    # repository, an https mirror or file:///path.
    "AZURE_LINUX_OVAL_URL": "https://raw.githubusercontent.com/microsoft/AzureLinuxVulnerabilityData/main",
    # Schedules: six-field NCRONTAB as Azure Functions uses.
    "RESCAN_SCHEDULE": "0 0 3 * * 0",
    "ADVISORY_REFRESH_SCHEDULE": "0 0 2 * * *",
    "CATCHUP_SCHEDULE": "0 30 */6 * * *",
    "PULL_WINDOW_DAYS": "30",
    # Entries read from one layer tar; past it the layer is read no further and the platform
    # is partial (what a layer holds in memory grows with its entry count).
    "MAX_LAYER_ENTRIES": "500000",
    # Worker processes a large weekly rescan matches in: 0 = one per CPU core, 1 = none.
    "RESCAN_PROCESSES": "0",
    # Images per activity of the rescan orchestration (each activity re-matches one chunk).
    "RESCAN_CHUNK_IMAGES": "500",
    # An untagged manifest push waits this long for an index that lists it: pushing an index
    # sends its children first, and the index scan covers every platform.
    "INDEX_CHILD_GRACE_SECONDS": "20",
    # Registries the catch-up job lists, comma separated login servers.
    "REGISTRIES": "",
    # Subscriptions whose registries the catch-up job also lists from ARM (comma separated ids;
    # the app's identity needs Reader on them).
    "SUBSCRIPTION_IDS": "",
    # Hosts reached over plain http (loopback always may be).
    "REGISTRY_INSECURE_HOSTS": "",
    # Records read from one package database (apk, dpkg, rpm) before the rest is left unread
    # with a warning and the platform marked partial: bounds the memory of a hostile database.
    "MAX_DB_RECORDS": "200000",
    # Total time for one registry operation, retries included: a manifest, index or config;
    # a blob gets the floor plus its size at the minimum rate (bytes per second).
    "REGISTRY_MANIFEST_DEADLINE_SECONDS": "60",
    "REGISTRY_BLOB_DEADLINE_SECONDS": "60",
    "REGISTRY_BLOB_MIN_BYTES_PER_SECOND": "1048576",
    # Attempts per registry operation on 429, 5xx, resets and timeouts (backoff with jitter).
    "REGISTRY_ATTEMPTS": "4",
    # Notifications.
    "NOTIFY_QUEUE_NAME": "scan-notifications",
    "NOTIFY_WEBHOOK_URL": "",
    # Billing: price per image digest scanned for the first time.
    "BILLING_UNIT_PRICE": "0.29",
    "BILLING_CURRENCY": "USD",
    # Defender-shaped API: login server -> registry ARM resource id (JSON object); unset, every
    # registry is the local id. "true" when App Service Authentication (Entra ID) guards it.
    "REGISTRY_RESOURCE_IDS": "",
    "API_ENTRA_AUTH": "",
    "API_KEYS": "",
    # The key that signs in to the web dashboard (scanning.dashboard.auth); none: only Entra.
    "DASHBOARD_KEY": "",
    # Signs the dashboard's CSRF tokens; empty: the key, else a random secret the store keeps
    # in its meta table (Entra sign-in only).
    "DASHBOARD_SECRET": "",
    # Object id of the Entra group whose members may use the dashboard; empty: any principal
    # App Service Authentication lets in.
    "DASHBOARD_ALLOWED_GROUP": "",
    # Optional export of sub-assessments to Log Analytics (Logs Ingestion API): the data
    # collection endpoint's logs ingestion URL, the rule's immutable id, its stream.
    "FINDINGS_DCR_ENDPOINT": "",
    "FINDINGS_DCR_RULE_ID": "",
    "FINDINGS_DCR_STREAM": "Custom-AcrScanSubAssessments",
    # Pull ledger source in Azure.
    "LOG_ANALYTICS_WORKSPACE_ID": "",
}


def setting(name: str) -> str:
    if name not in SETTINGS:
        raise ConfigError(f"unknown setting {name!r}")
    return os.environ.get(name, SETTINGS[name])


def int_setting(name: str) -> int:
    raw = setting(name)
    try:
        return int(raw)
    except ValueError as error:
        raise ConfigError(f"setting {name} must be an integer, got {raw!r}") from error


def float_setting(name: str) -> float:
    raw = setting(name)
    try:
        return float(raw)
    except ValueError as error:
        raise ConfigError(f"setting {name} must be a number, got {raw!r}") from error
