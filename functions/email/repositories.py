"""What the e-mail function reads: the raw mail in S3, and the delivery log for threading."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import ClientError

from shared.channels.email import provider_id_candidates
from shared.platform import aws
from shared.repositories.outbox import OutboxRepository

#: S3's answers for an object that is not there (GetObject without s3:ListBucket says 403).
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class RawMailMissing(LookupError):
    """The S3 object SES should have written is not there (expired, deleted, wrong prefix)."""


class RawMailStore:
    """The bucket the receipt rule's S3 action writes raw MIME into."""

    def __init__(self, client: Any = None) -> None:
        self._client = client

    @property
    def client(self) -> Any:
        return self._client or aws.client("s3")

    def get(self, bucket: str, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=bucket, Key=key)
        except ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            if code in _MISSING_CODES:
                raise RawMailMissing(f"s3://{bucket}/{key} does not exist") from error
            raise
        return bytes(response["Body"].read())


class OutboxThreads:
    """Finds the conversation of a mail we sent, by the Message-IDs a reply points at."""

    def __init__(self, outbox: OutboxRepository | None = None) -> None:
        self.outbox = outbox or OutboxRepository()

    def conversation_for(self, message_ids: Sequence[str]) -> tuple[str, str] | None:
        """``(conversation id, the Message-ID that matched)`` of the first id we sent, if any."""
        for message_id in message_ids:
            for candidate in provider_id_candidates(message_id):
                notification_id = self.outbox.notification_for_provider_id(candidate)
                if notification_id is None:
                    continue
                item = self.outbox.get(notification_id) or {}
                conversation_id = item.get("conversation_id")
                if isinstance(conversation_id, str) and conversation_id:
                    return conversation_id, message_id
        return None

    def delivery_for(
        self, notification_keys: Sequence[str], message_ids: Sequence[str]
    ) -> dict[str, Any] | None:
        """The delivery-log item of the mail a bounce returns: by the ``X-Omni-Notification``
        key notify put on it (``<notification id>#email``), else by its Message-ID."""
        for key in notification_keys:
            notification_id, _, channel = key.rpartition("#")
            if notification_id and channel == "email":
                item = self.outbox.get(notification_id)
                if item is not None:
                    return item
        for message_id in message_ids:
            for candidate in provider_id_candidates(message_id):
                found = self.outbox.notification_for_provider_id(candidate)
                if found is not None:
                    return self.outbox.get(found)
        return None
