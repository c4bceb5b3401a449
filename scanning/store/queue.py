"""The notification queue (Azure Storage Queues, Azurite locally)."""

from __future__ import annotations

import base64
import contextlib

from azure.core.exceptions import AzureError, ResourceExistsError

from scanning.errors import TransientStoreError
from scanning.store.clients import StorageClients


class NotificationQueue:
    """Messages for whoever acts on findings; one queue per deployment."""

    def __init__(self, clients: StorageClients, name: str) -> None:
        self.name = name
        self._client = clients.queue_service().get_queue_client(name)

    def create(self) -> None:
        with contextlib.suppress(ResourceExistsError):
            self._client.create_queue()

    def send(self, body: str) -> None:
        # Functions' queue trigger expects base64 by default; keep messages consumable by it.
        try:
            self._client.send_message(base64.b64encode(body.encode()).decode())
        except AzureError as error:
            raise TransientStoreError(f"cannot queue a notification on {self.name}: {error}"
                                      ) from error

    def receive(self, limit: int = 32) -> list[str]:
        """Up to ``limit`` messages' decoded bodies (tests and the local demo read them)."""
        with contextlib.suppress(AzureError):
            return [base64.b64decode(message.content).decode()
                    for message in self._client.receive_messages(max_messages=limit)]
        return []
