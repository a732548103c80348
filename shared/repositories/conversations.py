"""Conversations and their messages in the ``conversations`` table.

Items (``pk`` / ``sk``):

* ``CONV#<id>`` / ``META`` - status, routing, channels, counters; carries
  ``customer_id`` and ``opened_at``, the keys of the ``by-customer`` index;
* ``CONV#<id>`` / ``MSG#<timestamp>#<message id>`` - one message. The sort key starts
  with the provider's timestamp, so a query returns the conversation in the order the
  customer wrote it, whatever order the messages arrived in;
* ``SEEN#<message id>`` / ``SEEN`` - that a message was recorded, and where: the
  idempotency key, independent of timestamps and conversations, claimed on its own just
  before the message is written (see
  :class:`shared.repositories.conversation_messages.ConversationMessages`);
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
messages in the same query. Inbound messages are numbered (``in_seq`` on META, ``seq`` on the
message item, carried by ``message.recorded``); that a message was routed is the marker
``routed_seq`` (and ``routed_quiet`` when its reply was left out) on META, written in the
same conditional update as the decision (see
:mod:`shared.repositories.conversation_aggregates`). An event without a number still gets
the earlier marker (``routed_at`` on its ``SEEN`` item, in a transaction with the decision);
an old META item's ``transitions``, ``channel_switches``, ``handover`` and
``routed_messages`` are still read.

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

Status (see :mod:`shared.domain.conversation_status`): ``open`` -> ``bot`` | ``queued``;
``queued`` -> ``assigned`` -> ``active``; any -> ``resolved``; a resolved conversation reopens
(``open``) when the customer writes within the reopen window. Every change of status is
recorded as a ``HIST#`` item with who made it and why (in the same transaction as the
change), and bumps ``version``; META counts the reopenings (``reopen_count``) and channel
switches (``switch_count``) for the resolution's event.

Messages, ``SEEN`` items, delivery statuses and survey answers are written by
:class:`shared.repositories.conversation_messages.ConversationMessages`; the rules of the
status live in :mod:`shared.domain.conversation_status`; the read model is made in
:mod:`shared.repositories.conversation_views`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shared.contracts.models import (
    Conversation,
    ConversationSummary,
    Handover,
    Note,
    RoutingDecision,
    Transition,
)
from shared.domain.conversation_status import (
    MESSAGE_STATUS_RANK,
    OPEN,
    RESOLVED,
    UNFINISHED,
    IllegalTransition,
    is_unfinished,
    reopens,
)
from shared.platform import settings
from shared.repositories.agent_errors import AgentUnavailable
from shared.repositories.conversation_aggregates import (
    ACKNOWLEDGED_AT,
    AUTOMATED_MAIL,
    BOT_ATTRIBUTES,
    ConversationState,
    ResolutionRaced,
    RoutingMark,
    bot_clock_fields,
    conversation_facts,
    facts_item,
    meta_routing,
)
from shared.repositories.conversation_keys import (
    BY_CUSTOMER_INDEX,
    DEFAULT_REOPEN_WINDOW_HOURS,
    HANDOVER,
    HISTORY_PREFIX,
    MAX_ATTEMPTS,
    META,
    NOTE_PREFIX,
    QUEUE_ATTRIBUTES,
    QUEUED_INDEX,
    REOPEN_COUNT,
    SEEN,
    SWITCH_PREFIX,
    WAIT_ATTRIBUTES,
    WAITING_INDEX,
    conversation_id_of,
    conversation_pk,
    history_put,
    history_sk,
    message_sk,
    meta_key,
    put_action,
    queue_rank,
    seen_pk,
    switch_sk,
)
from shared.repositories.conversation_merge import ConversationMerger
from shared.repositories.conversation_messages import (
    ConcurrentUpdate,
    ConversationMessages,
    ConversationNotFound,
)
from shared.repositories.conversation_views import (
    conversation_of,
    history_of,
    opening,
    summary_of,
)
from shared.repositories.conversation_views import fields as _fields
from shared.repositories.conversation_views import message_of as _message  # noqa: F401 - kept for callers
from shared.repositories.customers import PROFILE, CustomerRepository, customer_pk
from shared.repositories.dynamo import Cancelled, DynamoTable, deserialise, serialise

if TYPE_CHECKING:
    from shared.contracts.events import ConversationFacts
    from shared.repositories.agents import AgentRepository

__all__ = [
    "BY_CUSTOMER_INDEX",
    "DEFAULT_REOPEN_WINDOW_HOURS",
    "HANDOVER",
    "HISTORY_PREFIX",
    "MAX_ATTEMPTS",
    "MESSAGE_STATUS_RANK",
    "META",
    "QUEUED_INDEX",
    "QUEUE_ATTRIBUTES",
    "REOPEN_COUNT",
    "SEEN",
    "SWITCH_PREFIX",
    "UNFINISHED",
    "WAITING_INDEX",
    "WAIT_ATTRIBUTES",
    "Change",
    "ConcurrentUpdate",
    "ConversationNotFound",
    "ConversationRepository",
    "ConversationState",
    "IllegalTransition",
    "ResolutionRaced",
    "RoutingRecord",
    "conversation_id_of",
    "conversation_pk",
    "history_of",
    "history_sk",
    "message_sk",
    "opening",
    "queue_rank",
    "seen_pk",
    "summary_of",
    "switch_sk",
]


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
    #: A new hand-over context (the ``HANDOVER`` item), put just before the change.
    handover: dict[str, Any] | None = None
    #: Nothing to write: ``update_meta`` returns without touching the item.
    noop: bool = False


@dataclass(frozen=True)
class RoutingRecord:
    """Routing's decision as :meth:`ConversationRepository.record_routing` records it on META."""

    decision: RoutingDecision
    at: str
    #: The reply is left out (the customer was acknowledged before): kept with the routed marker.
    quiet: bool = False
    #: The message's number: the routing marker on META (None: on the message's ``SEEN`` item).
    sequence: int | None = None
    #: Handed to a human: put in the decision's queue (the bot-resolution clock stops).
    enqueue: bool = False
    #: A new hand-over context, put with the change.
    handover: Handover | None = None
    #: The assistant's state as stored, when it changed.
    assistant: dict[str, Any] | None = None
    #: The acknowledgement window starts (seconds since the epoch).
    acknowledged_at: int | None = None
    #: The kind of automatic mail the message is (None: not one; an earlier kind is removed).
    automated_mail: str | None = None
    #: Answered by the bot: status ``bot``, the bot-resolution clock starts; ``transition``: to it.
    answered_by_bot: bool = False
    transition: Transition | None = None


class ConversationRepository(ConversationMessages):
    def __init__(self, table: DynamoTable | None = None, customers: CustomerRepository | None = None) -> None:
        self.table = table or DynamoTable(settings.CONVERSATIONS_TABLE)
        self._customers = customers

    @property
    def customers(self) -> CustomerRepository:
        if self._customers is None:
            self._customers = CustomerRepository()
        return self._customers

    # -- reads ------------------------------------------------------------- #
    def get_meta(self, conversation_id: str, consistent: bool = True) -> dict[str, Any] | None:
        """The META item; ``consistent=False`` (half the price) where a version condition
        protects the write that follows and the caller reads again when it fails."""
        return self.table.get(meta_key(conversation_id), consistent=consistent)

    def state(self, conversation_id: str, consistent: bool = True) -> ConversationState | None:
        """The conversation's META item, typed (None: no such conversation)."""
        meta = self.get_meta(conversation_id, consistent=consistent)
        return ConversationState.of(meta) if meta is not None else None

    def get(self, conversation_id: str, message_limit: int = 1000) -> Conversation | None:
        return conversation_of(self._partition(conversation_id, message_limit))

    def _partition(self, conversation_id: str, message_limit: int) -> list[dict[str, Any]]:
        """The conversation's items: everything up to META, then at most ``message_limit`` more.

        Two bounded queries: the hand-over, history and switch items sort before META and are
        read whole (they grow with changes of status, not with messages); the messages (and
        notes) after META at most ``message_limit``, every request with its ``Limit``.
        """
        pk = {":pk": {"S": conversation_pk(conversation_id)}, ":meta": {"S": META}}
        before = self.table.query_all(
            KeyConditionExpression="pk = :pk AND sk <= :meta",
            ExpressionAttributeValues=pk,
            ConsistentRead=True,
        )
        if not any(i["sk"] == META for i in before):
            return before
        after = self.table.query_all(
            limit=message_limit,
            KeyConditionExpression="pk = :pk AND sk > :meta",
            ExpressionAttributeValues=pk,
            ConsistentRead=True,
        )
        return before + after

    def get_handover(self, conversation_id: str) -> dict[str, Any] | None:
        """The hand-over context of the conversation's latest escalation, if any."""
        item = self.table.get({"pk": conversation_pk(conversation_id), "sk": HANDOVER})
        if item is not None:
            return _fields(item)
        meta = self.get_meta(conversation_id) or {}
        return meta.get("handover")  # written by an earlier version, inside META

    def handover_summary(self, conversation_id: str) -> str:
        """The summary of the conversation's latest hand-over context ("" without one)."""
        return str((self.get_handover(conversation_id) or {}).get("summary", ""))

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
        whose customer has waited for us since before ``before``, the longest waiting first
        (at most ``limit``)."""
        return self.table.query_all(
            limit=limit,
            IndexName=WAITING_INDEX,
            KeyConditionExpression="wait_queue = :q AND waiting_since < :before",
            ExpressionAttributeValues={":q": {"S": queue}, ":before": {"S": before}},
        )

    def waiting(self, queue: str, before: str, limit: int = 500) -> list[ConversationState]:
        """:meth:`waiting_since_before`, typed (the states hold what the index projects)."""
        return [ConversationState.of(item) for item in self.waiting_since_before(queue, before, limit)]

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

    def latest_of_customer(self, customer_id: str) -> ConversationState | None:
        """:meth:`latest_for_customer`, typed."""
        meta = self.latest_for_customer(customer_id)
        return ConversationState.of(meta) if meta is not None else None

    # -- writes ------------------------------------------------------------ #
    def open_for(
        self,
        customer_id: str,
        conversation_id: str,
        now: str,
        channel: str,
        reopen_window_hours: int = DEFAULT_REOPEN_WINDOW_HOURS,
    ) -> bool:
        """Create conversation ``conversation_id`` and make it the customer's open one.

        Unless the customer's latest conversation should take the message: one that is
        not finished (its open marker was lost in a race with resolving), or one resolved
        within the reopen window (the routing rules' ``reopen_window_hours``; the caller
        passes it, a repository reads no configuration), which reopens.
        A later message starts a new conversation linked to the previous one
        (``previous_conversation_id``).

        False when the customer has an open conversation now that is not
        ``conversation_id`` (one opened concurrently, or the latest one reattached or
        reopened): the caller reads the profile again and uses that one.
        """
        latest = self.latest_for_customer(customer_id)
        previous_id: str | None = None
        if latest is not None:
            status = latest.get("status")
            if is_unfinished(status):
                return self._attach(latest, customer_id, now, None)
            if reopens(status, latest.get("resolved_at", ""), now, reopen_window_hours):
                reopen = Transition(
                    at=now,
                    from_status=RESOLVED,
                    to_status=OPEN,
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
            "status": OPEN,
            "opened_at": now,
            "opened_on": channel,
            "version": 0,
            "message_count": 0,
            "channels": [],
            "previous_conversation_id": previous_id,
        }
        cancelled = self.table.transact(
            [
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
        if cancelled is None:
            return True
        if cancelled.condition_failed():
            return False
        raise cancelled.error

    def _attach(self, meta: dict[str, Any], customer_id: str, now: str, reopen: Transition | None) -> bool:
        """Make ``meta``'s conversation the customer's open one again (reopening it); always False."""
        values: dict[str, Any] = {":version": meta["version"], ":next": meta["version"] + 1}
        expression = "SET version = :next"
        extra: list[dict[str, Any]] = []
        if reopen is not None:
            expression += ", #status = :open, reopened_at = :now, " + REOPEN_COUNT
            values.update({":open": OPEN, ":now": now, ":zero": 0, ":one": 1})
            expression += " REMOVE resolved_at, resolution"
            extra.append(history_put(self.table.name, meta["conversation_id"], meta["version"] + 1, reopen))
        update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": serialise({"pk": meta["pk"], "sk": META}),
            "UpdateExpression": expression,
            "ConditionExpression": "version = :version",
            "ExpressionAttributeValues": serialise(values),
        }
        if reopen is not None:
            update["ExpressionAttributeNames"] = {"#status": "status"}
        cancelled = self.table.transact(
            [
                {"Update": update},
                self.customers.set_open_conversation(customer_id, meta["conversation_id"]),
                *extra,
            ]
        )
        if cancelled is not None and not cancelled.condition_failed():
            raise cancelled.error
        return False

    def update_meta(
        self,
        conversation_id: str,
        decide: Callable[[dict[str, Any]], Change],
        known: dict[str, Any] | None = None,
    ) -> tuple[dict[str, Any], Change]:
        """Read META, let ``decide`` say what changes, write it if META is unchanged; repeat on races.

        ``decide`` raises :class:`IllegalTransition` when the change is not allowed in the
        state it sees. Returns the META item ``decide`` saw and the change written.
        ``known``: META as the caller just read it, used for the first attempt instead of
        reading it again (the version condition rejects it if it is out of date).
        """
        for attempt in range(MAX_ATTEMPTS):
            meta = known if attempt == 0 and known is not None else self.get_meta(conversation_id)
            if meta is None:
                raise ConversationNotFound(conversation_id)
            change = decide(meta)
            if change.noop or self._write_change(conversation_id, meta, change):
                return meta, change
        raise ConcurrentUpdate(conversation_id)

    def record_routing(
        self,
        facts: ConversationFacts,
        record: Callable[[ConversationFacts], RoutingRecord | None],
        routed_meanwhile: Callable[[], Exception],
    ) -> ConversationState | None:
        """Record routing's decision on META, conditional on its version; the state as written
        (None: ``record`` found nothing to write).

        ``record`` says what to record on the conversation as it is: ``facts`` (as the event
        carried them) for the first attempt, as read again after a lost race. When another
        item of the write fails its condition (the message's routed marker), the exception
        ``routed_meanwhile()`` is raised.
        """
        known = facts_item(facts)

        def change(item: dict[str, Any]) -> Change:
            current = facts if item is known else conversation_facts(item)
            routing = record(current)
            if routing is None:
                return Change(noop=True)
            return self._routing_change(current, item, routing, routed_meanwhile)

        seen, written = self.update_meta(facts.conversation_id, change, known=known)
        if written.noop:
            return None
        after = {k: v for k, v in seen.items() if k not in written.remove}
        after.update(written.set)
        after["version"] = int(seen.get("version", 0)) + 1
        return ConversationState.of(after)

    def _routing_change(
        self,
        facts: ConversationFacts,
        item: dict[str, Any],
        routing: RoutingRecord,
        routed_meanwhile: Callable[[], Exception],
    ) -> Change:
        """The change recording ``routing`` on META as read (``item``, ``facts``)."""
        decision = routing.decision
        if routing.enqueue:
            change = self.queue_change(
                ConversationState.of(item),
                decision.queue,
                decision.priority,
                routing.at,
                by="routing",
                reason=decision.reason,
            )
            if routing.handover is not None:
                change.handover = routing.handover.model_dump(exclude_none=True)
            # Handed to a human: the bot-resolution clock stops.
            change.remove = (*change.remove, *(a for a in BOT_ATTRIBUTES if getattr(facts, a) is not None))
        else:
            change = Change()
        # Defaults left out: META is rewritten with every message and must stay under 1 KB.
        change.set["routing"] = meta_routing(decision)
        if routing.assistant is not None:
            change.set["assistant"] = routing.assistant
        if routing.sequence is not None:
            # One conditional update (META's version) records the decision and the marker.
            marked, unmarked = RoutingMark.of_facts(facts).updates(routing.sequence, routing.quiet)
            change.set.update(marked)
            change.remove = (*change.remove, *unmarked)
        else:
            change.also.append(self.mark_routed(decision.message_id, routing.at, routing.quiet))
        if routing.acknowledged_at is not None:
            change.set[ACKNOWLEDGED_AT] = routing.acknowledged_at  # the acknowledgement window starts
        if routing.automated_mail:
            change.set[AUTOMATED_MAIL] = routing.automated_mail  # no survey after its resolution
        elif facts.automated_mail is not None:
            change.remove = (*change.remove, AUTOMATED_MAIL)
        change.on_conflict = lambda _: routed_meanwhile()
        if routing.answered_by_bot:
            change.set["status"] = "bot"
            # Resolved by the bot when the customer stays silent (the SLA sweep).
            change.set.update(bot_clock_fields(ConversationState.of(item), routing.at))
            change.transition = routing.transition
        return change

    def _write_change(self, conversation_id: str, meta: dict[str, Any], change: Change) -> bool:
        """Write ``change`` to META as read (its ``version``); False when META changed meanwhile.

        A new hand-over context is put first, on its own (not in the transaction, where it
        would cost twice): a crash before the META update leaves the message unrouted, and its
        redelivery builds and puts the context again; a lost race (the hand-over then did not
        happen) leaves the context of the latest attempt, built from the same conversation.
        """
        if change.handover is not None:
            self.table.client.put_item(
                TableName=self.table.name,
                Item=serialise({"pk": conversation_pk(conversation_id), "sk": HANDOVER, **change.handover}),
            )
        update, extra = self._change_update(conversation_id, meta, change)
        if not (change.also or extra):
            return self.table.conditional("update_item", **update) is not None
        cancelled = self.table.transact([{"Update": update}, *change.also, *extra])
        if cancelled is None:
            return True
        if cancelled.condition_failed(0):
            return False  # META changed since we read it
        _raise_conflict(change, cancelled)
        return False  # another transaction touched the same items: read again

    def _change_update(
        self, conversation_id: str, meta: dict[str, Any], change: Change
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The version-guarded META update of ``change``, and the items written with it."""
        version = meta["version"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {":version": version, ":next": version + 1}
        sets = ["version = :next"]
        for i, (attr, value) in enumerate(change.set.items()):
            names[f"#s{i}"] = attr
            values[f":s{i}"] = value
            sets.append(f"#s{i} = :s{i}")
        extra: list[dict[str, Any]] = []
        if change.transition is not None:
            extra.append(history_put(self.table.name, conversation_id, version + 1, change.transition))
            if change.transition.from_status == RESOLVED:
                sets.append(REOPEN_COUNT)
                values.update({":zero": 0, ":one": 1})
        expression = "SET " + ", ".join(sets)
        removed = [a for a in change.remove if a not in change.set]
        if removed:
            names.update({f"#r{i}": attr for i, attr in enumerate(removed)})
            expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removed)))
        update: dict[str, Any] = {
            "TableName": self.table.name,
            "Key": serialise(meta_key(conversation_id)),
            "UpdateExpression": expression,
            "ConditionExpression": "version = :version",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialise(values),
        }
        return update, extra

    def _put(self, item: dict[str, Any]) -> dict[str, Any]:
        return put_action(self.table.name, item)

    def _history_put(self, conversation_id: str, version: int, transition: Transition) -> dict[str, Any]:
        """Transaction item: ``transition``, made by the META write that sets ``version``."""
        return history_put(self.table.name, conversation_id, version, transition)

    # -- typed writes: the desk, bot resolution and the SLA sweep -------------------------- #
    # Each takes the state it was decided on (the write is conditional on its ``version``) and
    # typed values; True when written, False when META changed since the state was read (read
    # it again: :meth:`apply`). A failed condition on another item of the transaction raises.

    def apply(
        self,
        conversation_id: str,
        attempt: Callable[[ConversationState], bool],
        known: ConversationState | None = None,
    ) -> ConversationState:
        """Read the state, let ``attempt`` check it and write; repeat while the write loses a race.

        ``attempt`` returns True when done (written, or nothing to write) and False when its
        write found META changed; it raises when the change is not allowed (e.g.
        :class:`IllegalTransition`). Returns the state of the attempt that finished.
        ``known``: the state as the caller just read it, used for the first attempt.
        """
        for i in range(MAX_ATTEMPTS):
            state = known if i == 0 and known is not None else self.state(conversation_id)
            if state is None:
                raise ConversationNotFound(conversation_id)
            if attempt(state):
                return state
        raise ConcurrentUpdate(conversation_id)

    def queue_change(
        self,
        state: ConversationState,
        queue: str,
        priority: int,
        at: str,
        by: str,
        reason: str,
        rerank: bool = True,
    ) -> Change:
        """The change putting the conversation in ``queue`` (waiting for an agent since ``at``).

        ``rerank``: when it already waits in that queue, only its priority (never lowered) and
        rank change, and only what differs (an unchanged rank leaves the index entry alone).
        Used by the writes below and, as a :class:`Change`, by the router's decision.
        """
        if rerank and state.status == "queued" and state.queue == queue:
            priority = max(priority, state.priority)
            since = state.waiting_since or at
            ranked = {"priority": priority, "queue_rank": queue_rank(priority, since)}
            current = {"priority": state.priority, "queue_rank": state.queue_rank}
            return Change(set={k: v for k, v in ranked.items() if current[k] != v})
        # No ``queued_at``: ``waiting_since`` says when it was queued (META stays under 1 KB).
        return Change(
            set={
                "status": "queued",
                "queue": queue,
                "priority": priority,
                "queued_in": queue,
                "queue_rank": queue_rank(priority, at),
                **_waiting(queue, at, "agent"),
            },
            remove=("stalled_for", "assigned_agent", "assigned_at", "accepted_at"),
            transition=Transition(
                at=at, from_status=state.status, to_status="queued", by=by, reason=reason, queue=queue
            ),
        )

    def enqueue(
        self, state: ConversationState, queue: str, priority: int, at: str, by: str, reason: str
    ) -> bool:
        """Put the conversation in ``queue`` (or re-rank it there); nothing when nothing changes."""
        change = self.queue_change(state, queue, priority, at, by, reason)
        if not change.set and not change.remove:
            return True
        return self._write_change(state.conversation_id, _versioned(state), change)

    def assign(
        self,
        state: ConversationState,
        agent_id: str,
        at: str,
        *,
        agents: AgentRepository,
        by: str,
        reason: str,
        accept: bool = False,
        release: str | None = None,
        require_available: bool = True,
    ) -> bool:
        """Give the conversation to ``agent_id``, in one transaction with the agent's load
        (``take``: available unless not ``require_available``, under capacity) and - for a
        transfer - the load of ``release``, who held it. ``accept``: taken and accepted at
        once (picked from the queue by the agent; the customer now waits for their reply).

        Raises :class:`AgentUnavailable` when the agent cannot take it, and
        :class:`IllegalTransition` when ``release`` no longer holds it.
        """
        to_status = "active" if accept else "assigned"
        fields: dict[str, Any] = {"status": to_status, "assigned_agent": agent_id, "assigned_at": at}
        if accept:
            fields.update({"accepted_at": at, **_waiting(state.queue or "", at, "reply")})
        also = [agents.take(agent_id, state.conversation_id, require_available)]
        if release:
            also.append(agents.release(release, state.conversation_id))
        change = Change(
            set=fields,
            remove=(*QUEUE_ATTRIBUTES, "stalled_for"),
            transition=Transition(
                at=at,
                from_status=state.status,
                to_status=to_status,
                by=by,
                reason=reason,
                queue=state.queue,
                agent_id=agent_id,
            ),
            also=also,
            on_conflict=lambda i: (
                AgentUnavailable(agent_id)
                if i == 0
                else IllegalTransition(f"agent {release} no longer holds the conversation")
            ),
        )
        return self._write_change(state.conversation_id, _versioned(state), change)

    def accept(self, state: ConversationState, agent_id: str, at: str, by: str) -> bool:
        """The assigned agent accepts the conversation: active, the customer waits for their reply."""
        change = Change(
            set={"status": "active", "accepted_at": at, **_waiting(state.queue or "", at, "reply")},
            remove=("stalled_for",),
            transition=Transition(
                at=at,
                from_status=state.status,
                to_status="active",
                by=by,
                reason="accepted",
                queue=state.queue,
                agent_id=agent_id,
            ),
        )
        return self._write_change(state.conversation_id, _versioned(state), change)

    def transfer_to_queue(
        self,
        state: ConversationState,
        queue: str,
        at: str,
        *,
        agents: AgentRepository,
        holder: str,
        by: str,
        reason: str,
    ) -> bool:
        """``holder`` hands the conversation back to ``queue`` (it waits anew, at its priority),
        in one transaction with the release of their load; :class:`IllegalTransition` when they
        no longer hold it."""
        change = self.queue_change(state, queue, state.priority, at, by, reason, rerank=False)
        change.also = [agents.release(holder, state.conversation_id)]
        change.on_conflict = lambda _: IllegalTransition("you no longer hold the conversation")
        return self._write_change(state.conversation_id, _versioned(state), change)

    def overflow(
        self, state: ConversationState, to_queue: str, at: str, *, overflowed_from: str, by: str, reason: str
    ) -> bool:
        """Move a queued conversation to the broader ``to_queue``: the customer's wait goes on
        (``waiting_since`` and a stall already reported are kept)."""
        change = self.queue_change(state, to_queue, state.priority, at, by, reason, rerank=False)
        since = state.waiting_since or at
        change.set.update({"waiting_since": since, "queue_rank": queue_rank(state.priority, since)})
        change.remove = tuple(a for a in change.remove if a != "stalled_for")
        change.set["overflowed_from"] = overflowed_from
        return self._write_change(state.conversation_id, _versioned(state), change)

    def resolve(
        self,
        state: ConversationState,
        at: str,
        resolution: str,
        *,
        agents: AgentRepository,
        agent_id: str,
        resolved_by: str,
        by: str,
        open_conversation: str | None,
    ) -> bool:
        """Resolve the conversation for ``agent_id`` (recorded as resolved by ``resolved_by``).

        In one transaction: the holder's load is released, the customer's open conversation
        (``open_conversation``, as their profile says) is closed when it is this one, and
        ``agent_id`` is remembered as the last to serve the customer. :class:`ResolutionRaced`
        when one of those items changed meanwhile (read again and redo).
        """
        cid = state.conversation_id
        also: list[dict[str, Any]] = []
        if state.assigned_agent:
            also.append(agents.release(state.assigned_agent, cid))
        if open_conversation == cid:
            also.append(self.close_for_customer(state.customer_id, cid))
        also.append(agents.remember_served(state.customer_id, agent_id, at))
        change = Change(
            set={"status": RESOLVED, "resolved_at": at, "resolution": resolution, "resolved_by": resolved_by},
            remove=("assigned_agent", *QUEUE_ATTRIBUTES, *WAIT_ATTRIBUTES),
            transition=Transition(
                at=at,
                from_status=state.status,
                to_status=RESOLVED,
                by=by,
                reason=resolution,
                queue=state.queue,
                agent_id=agent_id,
            ),
            also=also,
            on_conflict=lambda _: ResolutionRaced(),
        )
        return self._write_change(cid, _versioned(state), change)

    def resolve_by_bot(
        self,
        state: ConversationState,
        at: str,
        reason: str,
        *,
        open_conversation: str | None,
        closed_by: str | None = None,
    ) -> bool:
        """Resolve a conversation the bot answered, as resolved by the bot; its bot-resolution
        clock stops. ``closed_by``: the customer's message that closed it. The customer's open
        conversation is closed in the same transaction when it is this one
        (:class:`ResolutionRaced` when it changed meanwhile)."""
        cid = state.conversation_id
        fields: dict[str, Any] = {"status": RESOLVED, "resolved_at": at, "resolution": reason}
        fields["resolved_by"] = _BOT
        if closed_by is not None:
            fields["closed_by"] = closed_by
        change = Change(
            set=fields,
            remove=(*QUEUE_ATTRIBUTES, *WAIT_ATTRIBUTES, *BOT_ATTRIBUTES),
            transition=Transition(at=at, from_status=_BOT, to_status=RESOLVED, by=_BOT, reason=reason),
            also=[self.close_for_customer(state.customer_id, cid)] if open_conversation == cid else [],
            on_conflict=lambda _: ResolutionRaced(),
        )
        return self._write_change(cid, _versioned(state), change)

    def proactive_action(
        self,
        state: ConversationState,
        action: str,
        at: str,
        *,
        by: str,
        reason: str,
        queue: str | None = None,
        priority: int = 0,
        handover: Handover | None = None,
        decision: RoutingDecision | None = None,
    ) -> bool:
        """Record proactive ``action`` on the conversation; with a ``queue``, hand it over there
        (its context ``handover`` put first; ``decision`` recorded as its routing when it has
        none yet). Without one (an agent or a queue has it already) only the action is recorded."""
        change = self.queue_change(state, queue, priority, at, by, reason) if queue is not None else Change()
        if queue is not None and handover is not None:
            change.handover = handover.model_dump(exclude_none=True)
        if decision is not None:
            change.set["routing"] = decision.model_dump(exclude_none=True)
        change.set["proactive_actions"] = [*state.proactive_actions, action]
        return self._write_change(state.conversation_id, _versioned(state), change)

    def stop_bot_clock(self, state: ConversationState) -> bool:
        """Remove the conversation's ``bot-answered`` entry (it is not to be resolved by the bot)."""
        return self._write_change(state.conversation_id, _versioned(state), Change(remove=BOT_ATTRIBUTES))

    def mark_stalled(self, conversation_id: str, waiting_since: str, at: str) -> bool:
        """Claim the stall of the wait that began at ``waiting_since``; False if claimed before or over."""
        return self.table.update_if(
            meta_key(conversation_id),
            "SET stalled_for = :ws, stalled_at = :at, version = version + :one",
            "waiting_since = :ws AND (attribute_not_exists(stalled_for) OR stalled_for <> :ws)",
            {":ws": waiting_since, ":at": at, ":one": 1},
        )

    def unmark_stalled(self, conversation_id: str, waiting_since: str) -> None:
        """Give the claim back (the event could not be published; the next sweep tries again)."""
        self.table.update_if(
            meta_key(conversation_id),
            "REMOVE stalled_for, stalled_at SET version = version + :one",
            "stalled_for = :ws",
            {":ws": waiting_since, ":one": 1},
        )

    def add_note(self, conversation_id: str, note: Note) -> None:
        if self.get_meta(conversation_id) is None:
            raise ConversationNotFound(conversation_id)
        self.table.put_new(
            {
                "pk": conversation_pk(conversation_id),
                "sk": f"{NOTE_PREFIX}{note.at}#{note.note_id}",
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

    def seen(self, message_id: str) -> dict[str, Any] | None:
        """The marker of a message (or keyword) recorded before: where it went
        (``conversation_id``, for a survey answer) and ``what`` it was; None if it is new."""
        return self.table.get({"pk": seen_pk(message_id), "sk": SEEN})

    def bot_answered(self, partition: str, before: str, limit: int = 500) -> list[ConversationState]:
        """:meth:`bot_answered_before`, typed: ``conversation_id`` and ``bot_answered_at`` (keys only)."""
        return [ConversationState.of(item) for item in self.bot_answered_before(partition, before, limit)]

    def bot_answered_before(self, partition: str, before: str, limit: int = 500) -> list[dict[str, Any]]:
        """Entries (keys only) of the ``bot-answered`` index in ``partition`` (``bot#<shard>``)
        whose automated answer is older than ``before``, at most ``limit``."""
        return self.table.query_all(
            limit=limit,
            IndexName="bot-answered",
            KeyConditionExpression="bot_answered_in = :s AND bot_answered_at < :before",
            ExpressionAttributeValues={":s": {"S": partition}, ":before": {"S": before}},
        )

    def merger(self) -> ConversationMerger:
        """The conversation merger working on this repository's table."""
        return ConversationMerger(self.table)


_BOT = "bot"


def _waiting(queue: str, since: str, kind: str) -> dict[str, Any]:
    """The ``waiting`` index attributes: the customer waits in ``queue`` since ``since``."""
    return {"wait_queue": queue, "waiting_since": since, "wait_kind": kind}


def _versioned(state: ConversationState) -> dict[str, Any]:
    """What :meth:`ConversationRepository._write_change` reads of META: its version."""
    return {"version": state.version}


def _raise_conflict(change: Change, cancelled: Cancelled) -> None:
    """Raise for a cancelled change whose META condition held: the exception ``on_conflict``
    gives for the first of ``also`` whose condition failed, else the error itself unless
    another transaction conflicted (then the caller reads again)."""
    failed = [i for i in range(len(change.also)) if cancelled.condition_failed(1 + i)]
    if failed and change.on_conflict is not None:
        raise change.on_conflict(failed[0]) from cancelled.error
    if not cancelled.conflict:
        raise cancelled.error
