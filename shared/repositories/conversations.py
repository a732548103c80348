"""Conversations and their messages in the ``conversations`` table.

Items (``pk`` / ``sk``):

* ``CONV#<id>`` / ``META`` - status, routing, channels, counters; carries
  ``customer_id`` and ``opened_at``, the keys of the ``by-customer`` index;
* ``CONV#<id>`` / ``MSG#<timestamp>#<message id>`` - one message. The sort key starts
  with the provider's timestamp, so a query returns the conversation in the order the
  customer wrote it, whatever order the messages arrived in;
* ``SEEN#<message id>`` / ``SEEN`` - that a message was recorded, and where: the
  idempotency key, independent of timestamps and conversations;
* ``CONV#<id>`` / ``NOTE#<timestamp>#<note id>`` - an internal note of an agent;
* ``CONV#<id>`` / ``HIST#<version>`` - one change of status (a :class:`Transition`), keyed
  by the META version that made it, so the history reads back in the order it happened
  (the opening, ``new`` -> ``open``, is told by META's ``opened_at``/``opened_on``);
* ``CONV#<id>`` / ``CHANNEL#<version>`` - one switch of channel by the customer;
* ``CONV#<id>`` / ``HANDOVER`` - the hand-over context of the latest escalation.

Everything that grows with the conversation, or is large and rarely read, lives in those
items, not in META: META stays well under 1 KB, and every hop that rewrites it pays one
write unit (two in a transaction) instead of four or eight. The history, switch and
hand-over items sort before META, so :meth:`ConversationRepository.get` reads them with the
messages in the same query. That a message was routed is a marker (``routed_at``) on its
``SEEN`` item, written with the routing decision (in one transaction); an old META item's ``transitions``,
``channel_switches``, ``handover`` and ``routed_messages`` are still read.

The ``by-customer`` index projects only ``conversation_id``: whoever needs more reads
the META items by key (strongly consistent, and none of the per-message rewrites of META
is copied into the index). The META item also carries the keys of two sparse indexes,
present only while they apply:

* ``queued`` (``queued_in`` / ``queue_rank`` = ``<9 - priority>#<waiting since>``) - the
  conversations waiting in a queue for an agent, highest priority and longest waiting first;
* ``waiting`` (``wait_queue`` / ``waiting_since``) - every conversation whose customer
  waits for us: for an agent (queued or assigned but not accepted, ``wait_kind`` agent) or
  for the accepted agent's reply (``wait_kind`` reply). The SLA sweep queries it; it
  projects only what the sweep reads.

Status: ``open`` -> ``bot`` | ``queued``; ``queued`` -> ``assigned`` (an agent was chosen)
-> ``active`` (the agent accepted); any -> ``resolved``; a resolved conversation reopens
(``open``) when the customer writes within the reopen window. Every change of status is
recorded as a ``HIST#`` item with who made it and why (in the same transaction as the
change), and bumps ``version``; META counts the reopenings (``reopen_count``) and channel
switches (``switch_count``) for the resolution's event.

A message is written together with the update of its META item in one transaction
whose condition is that the message does not exist yet: a redelivered message has no
second effect, and a crash cannot leave the counters out of step with the messages.
The META update is guarded by a version number (optimistic locking), so concurrent
messages of one conversation cannot lose each other's channel switches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from shared.contracts.events import Identity, format_timestamp
from shared.contracts.models import (
    ChannelSwitch,
    Conversation,
    ConversationSummary,
    Handover,
    Message,
    Note,
    RoutingDecision,
    Transition,
)
from shared.repositories.customers import PROFILE, CustomerRepository, customer_pk
from shared.repositories.dynamo import (
    DynamoTable,
    cancellation_codes,
    deserialise,
    is_condition_failure,
    serialise,
)

META = "META"
SEEN = "SEEN"
HANDOVER = "HANDOVER"
HISTORY_PREFIX = "HIST#"
SWITCH_PREFIX = "CHANNEL#"
BY_CUSTOMER_INDEX = "by-customer"
QUEUED_INDEX = "queued"
WAITING_INDEX = "waiting"
MAX_ATTEMPTS = 5
#: Conversations that are not finished: a new message joins them.
UNFINISHED = ("open", "bot", "queued", "assigned", "active")
#: Attributes of the ``waiting`` index and the SLA bookkeeping that goes with it.
WAIT_ATTRIBUTES = ("wait_queue", "waiting_since", "wait_kind", "stalled_for")
QUEUE_ATTRIBUTES = ("queued_in", "queue_rank")
#: Order of an outbound message's delivery statuses (as the outbox's): never back from
#: ``delivered``/``read`` to ``sent``; ``failed`` is final.
MESSAGE_STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}
#: Counts a reopening on META (for ``conversation.resolved``; the history holds the details).
REOPEN_COUNT = "reopen_count = if_not_exists(reopen_count, :zero) + :one"


def conversation_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def seen_pk(message_id: str) -> str:
    return f"SEEN#{message_id}"


def message_sk(timestamp: str, message_id: str) -> str:
    return f"MSG#{timestamp}#{message_id}"


def history_sk(version: int) -> str:
    """Sort key of the transition made by the META write that set ``version``."""
    return f"{HISTORY_PREFIX}{version:010d}"


def switch_sk(version: int) -> str:
    return f"{SWITCH_PREFIX}{version:010d}"


def conversation_id_of(item: dict[str, Any]) -> str:
    """The conversation of an index item (``conversation_id``, else from its key)."""
    return str(item.get("conversation_id") or str(item["pk"]).removeprefix("CONV#"))


def queue_rank(priority: int, waiting_since: str) -> str:
    """Sort key in a queue: higher priority first, then longest waiting."""
    return f"{9 - max(0, min(priority, 9))}#{waiting_since}"


class ConcurrentUpdate(RuntimeError):
    """The conversation kept changing under us; the caller should retry the message later."""


class ConversationNotFound(LookupError):
    pass


class _NotPending(Exception):
    """No survey is pending on the conversation for this answer."""


class IllegalTransition(Exception):
    """The conversation is not in a state that allows the change (HTTP 409 with ``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Change:
    """An update of a conversation's META item, made by :meth:`ConversationRepository.update_meta`.

    ``also`` are further transaction items written atomically with it (an agent's
    capacity, the customer's open conversation); when one of their conditions fails,
    ``on_conflict(index)`` gives the exception to raise (``index`` into ``also``).
    """

    set: dict[str, Any] = field(default_factory=dict)
    remove: tuple[str, ...] = ()
    transition: Transition | None = None
    also: list[dict[str, Any]] = field(default_factory=list)
    on_conflict: Callable[[int], Exception] | None = None
    #: A new hand-over context (the ``HANDOVER`` item), written with the change.
    handover: dict[str, Any] | None = None
    #: Nothing to write: ``update_meta`` returns without touching the item.
    noop: bool = False


@dataclass
class _Edit:
    """What appending a message changes on META, and the items written with it."""

    expression: str
    values: dict[str, Any]
    remove: tuple[str, ...] = ()
    extra: list[dict[str, Any]] = field(default_factory=list)


class ConversationRepository:
    def __init__(self, table: DynamoTable | None = None, customers: CustomerRepository | None = None) -> None:
        self.table = table or DynamoTable("CONVERSATIONS_TABLE")
        self._customers = customers

    @property
    def customers(self) -> CustomerRepository:
        if self._customers is None:
            self._customers = CustomerRepository()
        return self._customers

    # -- reads ------------------------------------------------------------- #
    def was_seen(self, message_id: str) -> bool:
        """Whether a message (or keyword) with this id was recorded before."""
        return self.table.get({"pk": seen_pk(message_id), "sk": SEEN}) is not None

    def mark_seen(self, message_id: str, what: str) -> bool:
        """Record that ``message_id`` was handled outside any conversation; False if it was before."""
        return self.table.put_new({"pk": seen_pk(message_id), "sk": SEEN, "what": what})

    def get_meta(self, conversation_id: str) -> dict[str, Any] | None:
        return self.table.get({"pk": conversation_pk(conversation_id), "sk": META})

    def get(self, conversation_id: str, message_limit: int = 1000) -> Conversation | None:
        items = self._partition(conversation_id, message_limit)
        meta = next((i for i in items if i["sk"] == META), None)
        if meta is None:
            return None
        messages = [_message(i) for i in items if i["sk"].startswith("MSG#")]
        notes = [
            Note(note_id=i["note_id"], author=i["author"], text=i["text"], at=i["at"])
            for i in items
            if i["sk"].startswith("NOTE#")
        ]
        handover = next((_fields(i) for i in items if i["sk"] == HANDOVER), None) or meta.get("handover")
        switches = [
            *meta.get("channel_switches", []),
            *(_fields(i) for i in items if i["sk"].startswith(SWITCH_PREFIX)),
        ]
        transitions = history_of(meta, items)
        return Conversation(
            **summary_of(meta).model_dump(),
            messages=messages,
            channel_switches=[ChannelSwitch(**s) for s in switches],
            reply_to=meta.get("reply_to"),
            handover=Handover(**handover) if handover else None,
            transitions=[Transition(**t) for t in transitions],
            notes=notes,
            resolution=meta.get("resolution"),
            ces=meta.get("ces"),
            csat=meta.get("csat"),
        )

    def _partition(self, conversation_id: str, message_limit: int) -> list[dict[str, Any]]:
        """The conversation's items: everything up to META, then at most ``message_limit`` more.

        The hand-over, history and switch items sort before META and are always read whole;
        the limit bounds the messages (and notes) after it, as it always did.
        """
        kwargs: dict[str, Any] = {
            "TableName": self.table.name,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": conversation_pk(conversation_id)}},
            "ConsistentRead": True,
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self.table.client.query(**kwargs)
            items.extend(deserialise(raw) for raw in response.get("Items", []))
            after = sum(1 for i in items if i["sk"] > META)
            last = response.get("LastEvaluatedKey")
            if after >= message_limit or not last:
                break
            kwargs["ExclusiveStartKey"] = last
        before = [i for i in items if i["sk"] <= META]
        return before + [i for i in items if i["sk"] > META][:message_limit]

    def get_handover(self, conversation_id: str) -> dict[str, Any] | None:
        """The hand-over context of the conversation's latest escalation, if any."""
        item = self.table.get({"pk": conversation_pk(conversation_id), "sk": HANDOVER})
        if item is not None:
            return _fields(item)
        meta = self.get_meta(conversation_id) or {}
        return meta.get("handover")  # written by an earlier version, inside META

    def routing_of(self, message_id: str) -> dict[str, Any] | None:
        """The message's ``SEEN`` item: ``routed_at`` (and ``routing_quiet``) once routing
        recorded its decision."""
        return self.table.get({"pk": seen_pk(message_id), "sk": SEEN})

    def mark_routed(self, message_id: str, at: str, quiet: bool) -> dict[str, Any]:
        """Transaction item: ``message_id`` is routed (fails when it was before).

        Written with the routing decision on META, so a redelivered message is routed once
        and asks for the same reply again (``quiet``: none, the customer was acknowledged
        before). Nothing of the decision itself: ``SEEN`` outlives an erasure.
        """
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise({"pk": seen_pk(message_id), "sk": SEEN}),
                "UpdateExpression": "SET routed_at = :at, routing_quiet = :quiet",
                "ConditionExpression": "attribute_not_exists(routed_at)",
                "ExpressionAttributeValues": serialise({":at": at, ":quiet": quiet}),
            }
        }

    def messages(self, conversation_id: str, limit: int = 50) -> list[Message]:
        """The latest ``limit`` messages, oldest first."""
        items = self.table.query_all(
            limit=limit,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :msg)",
            ExpressionAttributeValues={":pk": {"S": conversation_pk(conversation_id)}, ":msg": {"S": "MSG#"}},
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return [_message(i) for i in reversed(items)]

    def get_many(self, conversation_ids: list[str]) -> list[ConversationSummary]:
        return sorted(
            (summary_of(meta) for meta in self._metas(conversation_ids)), key=lambda c: c.conversation_id
        )

    def _metas(self, conversation_ids: list[str]) -> list[dict[str, Any]]:
        """The META items of ``conversation_ids`` that exist, in the order of the ids."""
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(conversation_ids))
        for start in range(0, len(unique), 100):
            chunk = unique[start : start + 100]
            request = {
                self.table.name: {"Keys": [serialise({"pk": conversation_pk(c), "sk": META}) for c in chunk]}
            }
            while request:
                response = self.table.client.batch_get_item(RequestItems=request)
                for raw in response["Responses"].get(self.table.name, []):
                    meta = deserialise(raw)
                    found[meta["conversation_id"]] = meta
                request = response.get("UnprocessedKeys") or {}
        return [found[c] for c in unique if c in found]

    def queued(self, queue: str, limit: int = 50, full: bool = True) -> list[dict[str, Any]]:
        """Conversations waiting in ``queue`` for an agent, in the order they are served.

        ``full``: their META items; else the index items (``conversation_id``,
        ``queue_rank``), which is all the choice of the next conversation needs.
        """
        items = self.table.query_all(
            limit=limit,
            IndexName=QUEUED_INDEX,
            KeyConditionExpression="queued_in = :q",
            ExpressionAttributeValues={":q": {"S": queue}},
        )
        if not full:
            return items
        # A conversation that left the queue between the two reads is not listed.
        return [
            meta
            for meta in self._metas([conversation_id_of(i) for i in items])
            if meta.get("queued_in") == queue
        ]

    def waiting_since_before(self, queue: str, before: str, limit: int = 500) -> list[dict[str, Any]]:
        """Index items (the attributes the SLA sweep reads) of ``queue``'s conversations
        whose customer has waited for us since before ``before``."""
        return self.table.query_all(
            limit=limit,
            IndexName=WAITING_INDEX,
            KeyConditionExpression="wait_queue = :q AND waiting_since < :before",
            ExpressionAttributeValues={":q": {"S": queue}, ":before": {"S": before}},
        )

    def list_for_customer(self, customer_id: str, limit: int = 100) -> list[ConversationSummary]:
        """The customer's conversations, latest opened first."""
        items = self.table.query_all(
            limit=limit,
            IndexName=BY_CUSTOMER_INDEX,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
            ScanIndexForward=False,
        )
        metas = self._metas([conversation_id_of(i) for i in items])
        # Listed under another customer between the two reads (a merge moved it): not theirs.
        return [summary_of(meta) for meta in metas if meta.get("customer_id") == customer_id]

    def latest_for_customer(self, customer_id: str) -> dict[str, Any] | None:
        """The META item of the customer's latest opened conversation."""
        items = self.table.query_all(
            limit=1,
            IndexName=BY_CUSTOMER_INDEX,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
            ScanIndexForward=False,
        )
        return self.get_meta(conversation_id_of(items[0])) if items else None

    # -- writes ------------------------------------------------------------ #
    def open_for(
        self,
        customer_id: str,
        conversation_id: str,
        now: str,
        channel: str,
        reopen_window_hours: int | None = None,
    ) -> bool:
        """Create conversation ``conversation_id`` and make it the customer's open one.

        Unless the customer's latest conversation should take the message: one that is
        not finished (its open marker was lost in a race with resolving), or one resolved
        within the reopen window (default from the routing rules, 72 h), which reopens.
        A later message starts a new conversation linked to the previous one
        (``previous_conversation_id``).

        False when the customer has an open conversation now that is not
        ``conversation_id`` (one opened concurrently, or the latest one reattached or
        reopened): the caller reads the profile again and uses that one.
        """
        if reopen_window_hours is None:
            from shared.domain.routing_rules import load_rules  # noqa: PLC0415 - only on a first message

            reopen_window_hours = load_rules().reopen_window_hours
        latest = self.latest_for_customer(customer_id)
        previous_id: str | None = None
        if latest is not None:
            status = latest.get("status")
            cutoff = format_timestamp(datetime.fromisoformat(now) - timedelta(hours=reopen_window_hours))
            if status in UNFINISHED:
                return self._attach(latest, customer_id, now, None)
            if status == "resolved" and latest.get("resolved_at", "") >= cutoff:
                reopen = Transition(
                    at=now,
                    from_status="resolved",
                    to_status="open",
                    by="customer",
                    reason=f"the customer wrote again within {reopen_window_hours} h of the resolution",
                    queue=latest.get("queue"),
                )
                return self._attach(latest, customer_id, now, reopen)
            previous_id = latest["conversation_id"]
        meta = {
            "pk": conversation_pk(conversation_id),
            "sk": META,
            "conversation_id": conversation_id,
            "customer_id": customer_id,
            "status": "open",
            "opened_at": now,
            "opened_on": channel,
            "version": 0,
            "message_count": 0,
            "channels": [],
            "previous_conversation_id": previous_id,
        }
        try:
            self.table.client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": serialise(meta),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    self.customers.set_open_conversation(customer_id, conversation_id),
                ]
            )
        except ClientError as error:
            if "ConditionalCheckFailed" in cancellation_codes(error):
                return False
            raise
        return True

    def _attach(self, meta: dict[str, Any], customer_id: str, now: str, reopen: Transition | None) -> bool:
        """Make ``meta``'s conversation the customer's open one again (reopening it); always False."""
        values: dict[str, Any] = {":version": meta["version"], ":next": meta["version"] + 1}
        expression = "SET version = :next"
        extra: list[dict[str, Any]] = []
        if reopen is not None:
            expression += ", #status = :open, reopened_at = :now, " + REOPEN_COUNT
            values.update({":open": "open", ":now": now, ":zero": 0, ":one": 1})
            expression += " REMOVE resolved_at, resolution"
            extra.append(self._history_put(meta["conversation_id"], meta["version"] + 1, reopen))
        update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": serialise({"pk": meta["pk"], "sk": META}),
            "UpdateExpression": expression,
            "ConditionExpression": "version = :version",
            "ExpressionAttributeValues": serialise(values),
        }
        if reopen is not None:
            update["ExpressionAttributeNames"] = {"#status": "status"}
        try:
            self.table.client.transact_write_items(
                TransactItems=[
                    {"Update": update},
                    self.customers.set_open_conversation(customer_id, meta["conversation_id"]),
                    *extra,
                ]
            )
        except ClientError as error:
            if "ConditionalCheckFailed" not in cancellation_codes(error):
                raise
        return False

    def record_inbound(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        sent_at: str,
        reply_to: Identity,
        attachments: list[dict[str, Any]] | None = None,
        received_at: str | None = None,
        facts: dict[str, bool] | None = None,
    ) -> bool:
        """Append an inbound message; False when it was recorded before (a redelivery).

        ``facts``, when given, learns what the message did to the conversation (for the
        KPIs): ``channel_switch`` (the previous inbound message came on another channel) and
        ``reopened`` (the conversation was resolved).
        """
        learned: dict[str, bool] = {}
        item = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(sent_at, message_id),
            "message_id": message_id,
            "direction": "inbound",
            "channel": channel,
            "text": text,
            "timestamp": sent_at,
            "received_at": received_at,
            "author": "customer",
            "attachments": attachments or [],
        }

        conversation = conversation_pk(conversation_id)

        def change(meta: dict[str, Any]) -> _Edit:
            values: dict[str, Any] = {
                ":one": 1,
                ":channel": channel,
                ":ts": sent_at,
            }
            expression = (
                "SET message_count = message_count + :one, last_inbound_channel = :channel, "
                "last_channel = :channel, last_inbound_at = :ts"
            )
            extra: list[dict[str, Any]] = []
            if meta.get("reply_to") != reply_to.model_dump():
                expression += ", reply_to = :reply_to"
                values[":reply_to"] = reply_to.model_dump()
            if channel not in meta.get("channels", []):
                expression += ", channels = list_append(if_not_exists(channels, :empty), :channel_list)"
                values.update({":channel_list": [channel], ":empty": []})
            previous = meta.get("last_inbound_channel")
            learned.update(channel_switch=bool(previous and previous != channel), reopened=False)
            if previous and previous != channel:
                switch = ChannelSwitch(
                    from_channel=previous, to_channel=channel, at=sent_at, message_id=message_id
                )
                extra.append(
                    self._put(
                        {"pk": conversation, "sk": switch_sk(meta["version"] + 1), **switch.model_dump()}
                    )
                )
                expression += ", switch_count = if_not_exists(switch_count, :zero) + :one"
                values[":zero"] = 0
            if sent_at > meta.get("last_message_at", ""):
                expression += ", last_message_at = :ts"
            status = meta.get("status")
            if status == "active" and not meta.get("waiting_since") and meta.get("queue"):
                # The customer now waits for the agent's reply: the SLA clock starts.
                expression += ", wait_queue = :queue, waiting_since = :ts, wait_kind = :reply"
                values.update({":queue": meta["queue"], ":reply": "reply"})
            elif status == "resolved":
                # Resolved while this message was on its way: the customer is not finished.
                reopen = Transition(
                    at=sent_at,
                    from_status="resolved",
                    to_status="open",
                    by="customer",
                    reason="the customer wrote while the conversation was being resolved",
                    queue=meta.get("queue"),
                )
                expression += ", #status = :open, reopened_at = :ts, " + REOPEN_COUNT
                values.update({":open": "open", ":zero": 0})
                extra.append(self._history_put(conversation_id, meta["version"] + 1, reopen))
                learned["reopened"] = True
                return _Edit(expression, values, ("resolved_at", "resolution"), extra)
            return _Edit(expression, values, (), extra)

        written = self._append(conversation_id, item, change)
        if written and facts is not None:
            facts.update(learned)
        return written

    def record_survey_answer(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        sent_at: str,
        received_at: str | None,
        survey: str,
        score: int,
    ) -> bool | None:
        """Append the customer's answer to the survey pending on the resolved conversation,
        store it (``<survey>: {score, answered_at, message_id, via}``) and clear the pending
        question, without reopening the conversation.

        False when the message was recorded before (a redelivery); None when the survey is
        not pending (any more) on a resolved conversation, or was answered: then the
        message is an ordinary one.
        """
        item = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(sent_at, message_id),
            "message_id": message_id,
            "direction": "inbound",
            "channel": channel,
            "text": text,
            "timestamp": sent_at,
            "received_at": received_at,
            "author": "customer",
            "attachments": [],
            "survey": survey,
        }

        def change(meta: dict[str, Any]) -> _Edit:
            pending = meta.get("survey_pending") or {}
            answered = meta.get(survey) or {}
            if answered.get("message_id") == message_id:
                # This very message answered it (a redelivery): the write below finds it recorded.
                return _Edit(f"SET {survey} = :answer", {":answer": answered})
            if (
                meta.get("status") != "resolved"
                or pending.get("survey") != survey
                or pending.get("resolved_at") != meta.get("resolved_at")
                or meta.get(survey)
            ):
                raise _NotPending
            answer = {"score": score, "answered_at": sent_at, "message_id": message_id, "via": "reply"}
            return _Edit(
                f"SET message_count = message_count + :one, {survey} = :answer",
                {":one": 1, ":answer": answer},
                ("survey_pending",),
            )

        try:
            return self._append(conversation_id, item, change)
        except _NotPending:
            return None

    def set_survey_pending(self, conversation_id: str, survey: str, resolved_at: str, asked_at: str) -> bool:
        """Mark the survey asked for the resolution at ``resolved_at``; False when the conversation
        is no longer resolved at that time (reopened, or resolved again)."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET survey_pending = :p, version = version + :one",
                ConditionExpression="#status = :resolved AND resolved_at = :at",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialise(
                    {
                        ":p": {"survey": survey, "resolved_at": resolved_at, "asked_at": asked_at},
                        ":resolved": "resolved",
                        ":at": resolved_at,
                        ":one": 1,
                    }
                ),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def store_survey_answer(self, conversation_id: str, survey: str, answer: dict[str, Any]) -> bool:
        """Store a survey answer given by link; False when the survey was answered before (the
        first answer wins). Clears the pending question of that survey."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET #survey = :answer, version = version + :one REMOVE survey_pending",
                ConditionExpression="attribute_exists(pk) AND attribute_not_exists(#survey)",
                ExpressionAttributeNames={"#survey": survey},
                ExpressionAttributeValues=serialise({":answer": answer, ":one": 1}),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def set_message_status(
        self,
        conversation_id: str | None,
        message_id: str,
        status: str,
        at: str,
        error_code: str | None = None,
    ) -> bool:
        """Move an outbound message's delivery status forward (a provider's receipt).

        The message is found through its ``SEEN#<message id>`` item; ``conversation_id``
        None means the conversation it was recorded in. Monotonic like the outbox: a
        status that is not later than the stored one changes nothing. Returns whether
        the status changed (False for an unknown message, another conversation's
        message, an inbound message, or an earlier or equal status).
        """
        if status not in MESSAGE_STATUS_RANK:
            raise ValueError(f"unknown delivery status {status!r}")
        seen = self.table.get({"pk": seen_pk(message_id), "sk": SEEN})
        if seen is None or not seen.get("message_sk"):
            return False
        if conversation_id is not None and seen.get("conversation_id") != conversation_id:
            return False
        rank = MESSAGE_STATUS_RANK[status]
        earlier = [name for name, value in MESSAGE_STATUS_RANK.items() if value < rank]
        values: dict[str, Any] = {":status": status, ":rank": rank, ":at": at, ":outbound": "outbound"}
        # Items written before ranks were stored carry only their status name.
        unranked = "attribute_not_exists(#status)"
        if earlier:
            values.update({f":e{i}": name for i, name in enumerate(earlier)})
            unranked += " OR #status IN (" + ", ".join(f":e{i}" for i in range(len(earlier))) + ")"
        expression = "SET #status = :status, status_rank = :rank, status_at = :at"
        if error_code:
            expression += ", error_code = :code"
            values[":code"] = error_code
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(seen["conversation_id"]), "sk": seen["message_sk"]}),
                UpdateExpression=expression,
                ConditionExpression=(
                    "attribute_exists(pk) AND direction = :outbound AND (status_rank < :rank OR "
                    f"(attribute_not_exists(status_rank) AND ({unranked})))"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=serialise(values),
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def record_outbound(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        timestamp: str,
        author: str,
        status: str,
        citations: list[dict[str, str]] | None = None,
    ) -> bool:
        """Append an outbound message (a reply, an acknowledgement); False if already there.

        ``citations``: the knowledge-base articles a bot answer came from."""
        item: dict[str, Any] = {
            "pk": conversation_pk(conversation_id),
            "sk": message_sk(timestamp, message_id),
            "message_id": message_id,
            "direction": "outbound",
            "channel": channel,
            "text": text,
            "timestamp": timestamp,
            "author": author,
            "status": status,
        }
        if citations:
            item["citations"] = citations

        def change(meta: dict[str, Any]) -> _Edit:
            expression = (
                "SET message_count = message_count + :one, last_outbound_at = :ts, last_channel = :channel"
            )
            if timestamp > meta.get("last_message_at", ""):
                expression += ", last_message_at = :ts"
            # The agent answered: the customer no longer waits for a reply.
            answered = author.startswith("agent:") and meta.get("wait_kind") == "reply"
            return _Edit(
                expression,
                {":one": 1, ":ts": timestamp, ":channel": channel},
                WAIT_ATTRIBUTES if answered else (),
            )

        return self._append(conversation_id, item, change)

    def _append(
        self, conversation_id: str, item: dict[str, Any], change: Callable[[dict[str, Any]], _Edit]
    ) -> bool:
        key = {"pk": conversation_pk(conversation_id), "sk": META}
        for _ in range(MAX_ATTEMPTS):
            meta = self.table.get(key)
            if meta is None:
                raise ConversationNotFound(conversation_id)
            edit = change(meta)
            expression, values = edit.expression, edit.values
            values[":version"] = meta["version"]
            values[":next"] = meta["version"] + 1
            expression += ", version = :next"
            # Only what the message changes is written: attributes absent from META are not removed.
            removed = [a for a in edit.remove if a in meta]
            if removed:
                expression += " REMOVE " + ", ".join(removed)
            update: dict[str, Any] = {
                "TableName": self.table.name,
                "Key": serialise(key),
                "UpdateExpression": expression,
                "ConditionExpression": "version = :version",
                "ExpressionAttributeValues": serialise(values),
            }
            if "#status" in expression:
                update["ExpressionAttributeNames"] = {"#status": "status"}
            try:
                self.table.client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self.table.name,
                                "Item": serialise(item),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            # Keyed by the message id alone: a provider retry with another
                            # timestamp, or one arriving after the conversation changed, is
                            # still recognised as the same message.
                            "Put": {
                                "TableName": self.table.name,
                                "Item": serialise(
                                    {
                                        "pk": seen_pk(item["message_id"]),
                                        "sk": SEEN,
                                        "conversation_id": conversation_id,
                                        "message_sk": item["sk"],
                                    }
                                ),
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {"Update": update},
                        *edit.extra,
                    ]
                )
            except ClientError as error:
                codes = cancellation_codes(error)
                if "ConditionalCheckFailed" in codes[:2]:
                    return False  # the message is there already
                if "ConditionalCheckFailed" in codes:
                    continue  # META changed since we read it: read again
                raise
            return True
        raise ConcurrentUpdate(conversation_id)

    def ces_answer_item(
        self, conversation_id: str, score: int, answered_at: str, message_id: str
    ) -> dict[str, Any]:
        """Transaction item storing a Customer Effort Score answer (1-7) on the conversation."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                "UpdateExpression": "SET ces = :ces",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": serialise(
                    {":ces": {"score": score, "answered_at": answered_at, "message_id": message_id}}
                ),
            }
        }

    def update_meta(
        self, conversation_id: str, decide: Callable[[dict[str, Any]], Change]
    ) -> tuple[dict[str, Any], Change]:
        """Read META, let ``decide`` say what changes, write it if META is unchanged; repeat on races.

        ``decide`` raises :class:`IllegalTransition` when the change is not allowed in the
        state it sees. Returns the META item ``decide`` saw and the change written.
        """
        key = serialise({"pk": conversation_pk(conversation_id), "sk": META})
        for _ in range(MAX_ATTEMPTS):
            meta = self.get_meta(conversation_id)
            if meta is None:
                raise ConversationNotFound(conversation_id)
            change = decide(meta)
            if change.noop:
                return meta, change
            names: dict[str, str] = {}
            values: dict[str, Any] = {":version": meta["version"], ":next": meta["version"] + 1}
            sets = ["version = :next"]
            for i, (attr, value) in enumerate(change.set.items()):
                names[f"#s{i}"] = attr
                values[f":s{i}"] = value
                sets.append(f"#s{i} = :s{i}")
            extra: list[dict[str, Any]] = []
            if change.transition is not None:
                extra.append(self._history_put(conversation_id, meta["version"] + 1, change.transition))
                if change.transition.from_status == "resolved":
                    sets.append(REOPEN_COUNT)
                    values.update({":zero": 0, ":one": 1})
            if change.handover is not None:
                extra.append(
                    self._put({"pk": conversation_pk(conversation_id), "sk": HANDOVER, **change.handover})
                )
            expression = "SET " + ", ".join(sets)
            removed = [a for a in change.remove if a not in change.set]
            if removed:
                for i, attr in enumerate(removed):
                    names[f"#r{i}"] = attr
                expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
            update: dict[str, Any] = {
                "TableName": self.table.name,
                "Key": key,
                "UpdateExpression": expression,
                "ConditionExpression": "version = :version",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": serialise(values),
            }
            try:
                if change.also or extra:
                    self.table.client.transact_write_items(
                        TransactItems=[{"Update": update}, *change.also, *extra]
                    )
                else:
                    self.table.client.update_item(**update)
            except ClientError as error:
                codes = cancellation_codes(error)
                if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                    continue  # META changed since we read it
                if not codes:
                    raise
                if codes[0] == "ConditionalCheckFailed":
                    continue
                failed = [
                    i
                    for i, code in enumerate(codes[1 : 1 + len(change.also)])
                    if code == "ConditionalCheckFailed"
                ]
                if failed and change.on_conflict is not None:
                    raise change.on_conflict(failed[0]) from error
                if "TransactionConflict" in codes:
                    continue  # another transaction touched the same items: read again
                raise
            return meta, change
        raise ConcurrentUpdate(conversation_id)

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"Put": {"TableName": self.table.name, "Item": serialise(item)}}

    def _history_put(self, conversation_id: str, version: int, transition: Transition) -> dict[str, Any]:
        """Transaction item: ``transition``, made by the META write that sets ``version``.

        Keyed by that version: written only with that (version-guarded) write, so a
        repeated or lost race never leaves a second or a stray entry.
        """
        return self._put(
            {
                "pk": conversation_pk(conversation_id),
                "sk": history_sk(version),
                **transition.model_dump(exclude_none=True),
            }
        )

    def mark_stalled(self, conversation_id: str, waiting_since: str, at: str) -> bool:
        """Claim the stall of the wait that began at ``waiting_since``; False if claimed before or over."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="SET stalled_for = :ws, stalled_at = :at, version = version + :one",
                ConditionExpression=(
                    "waiting_since = :ws AND (attribute_not_exists(stalled_for) OR stalled_for <> :ws)"
                ),
                ExpressionAttributeValues=serialise({":ws": waiting_since, ":at": at, ":one": 1}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def unmark_stalled(self, conversation_id: str, waiting_since: str) -> None:
        """Give the claim back (the event could not be published; the next sweep tries again)."""
        try:
            self.table.client.update_item(
                TableName=self.table.name,
                Key=serialise({"pk": conversation_pk(conversation_id), "sk": META}),
                UpdateExpression="REMOVE stalled_for, stalled_at SET version = version + :one",
                ConditionExpression="stalled_for = :ws",
                ExpressionAttributeValues=serialise({":ws": waiting_since, ":one": 1}),
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise

    def add_note(self, conversation_id: str, note: Note) -> None:
        if self.get_meta(conversation_id) is None:
            raise ConversationNotFound(conversation_id)
        self.table.put_new(
            {
                "pk": conversation_pk(conversation_id),
                "sk": f"NOTE#{note.at}#{note.note_id}",
                **note.model_dump(),
            },
            key_attr="sk",
        )

    def close_for_customer(self, customer_id: str, conversation_id: str) -> dict[str, Any]:
        """Transaction item: the customer has no open conversation any more (it was this one).

        Kept here rather than in the customers repository because it only ever goes with a
        conversation's resolution; it writes nothing but ``open_conversation_id``.
        """
        return {
            "Update": {
                "TableName": self.customers.table.name,
                "Key": serialise({"pk": customer_pk(customer_id), "sk": PROFILE}),
                "UpdateExpression": "REMOVE open_conversation_id",
                "ConditionExpression": "open_conversation_id = :c",
                "ExpressionAttributeValues": {":c": {"S": conversation_id}},
            }
        }


def summary_of(meta: dict[str, Any]) -> ConversationSummary:
    routing = meta.get("routing")
    return ConversationSummary(
        conversation_id=meta["conversation_id"],
        customer_id=meta["customer_id"],
        status=meta["status"],
        opened_at=meta["opened_at"],
        last_message_at=meta.get("last_message_at"),
        last_channel=meta.get("last_channel"),
        channels=meta.get("channels", []),
        message_count=meta.get("message_count", 0),
        routing=RoutingDecision(**routing) if routing else None,
        queue=meta.get("queue"),
        priority=meta.get("priority", 0),
        assigned_agent=meta.get("assigned_agent"),
        waiting_since=meta.get("waiting_since"),
        wait_kind=meta.get("wait_kind"),
        resolved_at=meta.get("resolved_at"),
        previous_conversation_id=meta.get("previous_conversation_id"),
    )


def opening(meta: dict[str, Any]) -> dict[str, Any]:
    """The first transition (``new`` -> ``open``): everything it says is on META already."""
    previous = meta.get("previous_conversation_id")
    return Transition(
        at=meta["opened_at"],
        from_status="new",
        to_status="open",
        by="customer",
        reason=f"first message on {meta.get('opened_on')}" + (f" (follows {previous})" if previous else ""),
    ).model_dump(exclude_none=True)


def history_of(meta: dict[str, Any], items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every transition of the conversation, oldest first, from META and its ``HIST#`` items.

    A META item written by an earlier version holds the list itself (opening included).
    """
    recorded = [_fields(i) for i in items if i["sk"].startswith(HISTORY_PREFIX)]
    return [*(meta.get("transitions") or [opening(meta)]), *recorded]


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    """An item's attributes without its key."""
    return {k: v for k, v in item.items() if k not in ("pk", "sk")}


def _message(item: dict[str, Any]) -> Message:
    return Message(
        message_id=item["message_id"],
        direction=item["direction"],
        channel=item["channel"],
        text=item.get("text", ""),
        timestamp=item["timestamp"],
        author=item.get("author"),
        status=item.get("status"),
        attachments=item.get("attachments", []),
        citations=item.get("citations", []),
    )
