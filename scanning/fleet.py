"""The registries of whole subscriptions, listed from Azure Resource Manager.

Subscription-wide onboarding (``infra/subscription.bicep``) wires every registry to the app by
policy; the catch-up job also lists them here (``SUBSCRIPTION_IDS``), so a registry created
since the last remediation is caught up before the policy reaches it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

from scanning.errors import AuthError, RegistryError, TransientRegistryError

log = logging.getLogger(__name__)

# Each ARM request (connect, then read) is bounded: one listing page is small.
ARM_TIMEOUT_SECONDS = 30


def subscription_registries(credential: Any, subscription_id: str,
                            **client_options: Any) -> tuple[str, ...]:
    """Login servers of the subscription's container registries, following ARM's pages.

    ``client_options`` go to the management client (tests pass a ``transport``)."""
    from azure.mgmt.containerregistry import ContainerRegistryManagementClient

    client = ContainerRegistryManagementClient(
        credential, subscription_id, connection_timeout=ARM_TIMEOUT_SECONDS,
        read_timeout=ARM_TIMEOUT_SECONDS, **client_options)
    try:
        return tuple(sorted(registry.login_server for registry in client.registries.list()
                            if registry.login_server))
    except ClientAuthenticationError as error:
        raise AuthError(f"listing registries of subscription {subscription_id}: "
                        f"{error.message}") from error
    except HttpResponseError as error:
        status = error.status_code or 0
        kind = TransientRegistryError if status == 429 or status >= 500 else RegistryError
        raise kind(f"listing registries of subscription {subscription_id}: HTTP {status} "
                   f"{error.message}") from error
    except AzureError as error:  # connection failures and timeouts
        raise TransientRegistryError(f"listing registries of subscription {subscription_id}: "
                                     f"{error}") from error
    finally:
        client.close()


def fleet_registries(static: Iterable[str], subscription_ids: Iterable[str], credential: Any,
                     **client_options: Any) -> tuple[str, ...]:
    """``static`` then every subscription's registries, each once. A subscription that cannot
    be listed is logged as an error and skipped: the others are still caught up, and the next
    catch-up lists it again."""
    found = dict.fromkeys(static)
    for subscription_id in subscription_ids:
        try:
            found.update(dict.fromkeys(subscription_registries(credential, subscription_id,
                                                               **client_options)))
        except RegistryError as error:
            log.error("catch-up: %s", error)
    return tuple(found)
