"""A conversation's messages in the ``conversations`` table: recording them, their ``SEEN`` items,
delivery statuses and survey answers (see :mod:`shared.repositories.conversations` for the items).

A message's ``SEEN`` item (keyed by its id alone) is claimed first, on its own; then the
message is written together with the update of its META item in one transaction whose
condition is that the message does not exist yet: a redelivered message has no second
effect, and a crash cannot leave the counters out of step with the messages. A crash
between the claim and the transaction is repaired by the redelivery, which writes the
message where the claim points. The META update is guarded by a version number (optimistic
locking), so concurrent messages of one conversation cannot lose each other's channel
switches, and numbers the inbound messages exactly (``in_seq``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.contracts.events import ConversationFacts, Identity
from shared.contracts.models import ChannelSwitch, Message, RoutingDecision, Transition
from shared.domain.conversation_status import (
    MESSAGE_STATUS_RANK,
    OPEN,
    RESOLVED,
    SurveyReply,
    earlier_delivery_statuses,
    ends_reply_wait,
    starts_reply_wait,
    survey_reply,
)
from shared.repositories.conversation_aggregates import (
    DECISION,
    INBOUND_SEQ,
    InboundRecorded,
    conversation_facts,
    facts_item,
    joined_decision,
    recorded_facts,
)
from shared.repositories.conversation_keys import (
    MAX_ATTEMPTS,
    MESSAGE_PREFIX,
    REOPEN_COUNT,
    WAIT_ATTRIBUTES,
    conversation_pk,
    history_put,
    message_sk,
    meta_key,
    put_action,
    seen_key,
    switch_sk,
)
from shared.repositories.conversation_views import message_of
from shared.repositories.dynamo import DynamoTable, serialise


class ConcurrentUpdate(RuntimeError):
    """The conversation kept changing under us; the caller should retry the message later."""


class ConversationNotFound(LookupError):
    pass


class _NotPending(Exception):
    """No survey is pending on the conversation for this answer."""


@dataclass
class _Edit:
    """What appending a message changes on META, and the items written with it."""

    expression: str
    values: dict[str, Any]
    remove: tuple[str, ...] = ()
    extra: list[dict[str, Any]] = field(default_factory=list)
    #: Attributes written on the message item with this change (its number).
    message: dict[str, Any] = field(default_factory=dict)


class ConversationMessages:
    """The message side of :class:`shared.repositories.conversations.ConversationRepository`."""

    table: DynamoTable

    # -- SEEN items ----------------------------------------------------------- #
    def was_seen(self, message_id: str) -> bool:
        """Whether a message (or keyword) with this id was recorded before."""
        return self.table.get(seen_key(message_id)) is not None

    def mark_seen(self, message_id: str, what: str) -> bool:
        """Record that ``message_id`` was handled outside any conversation; False if it was before."""
        return self.table.put_new({**seen_key(message_id), "what": what})

    def routing_of(self, message_id: str) -> dict[str, Any] | None:
        """The message's ``SEEN`` item: ``routed_at`` (and ``routing_quiet``) once routing
        recorded its decision."""
        return self.table.get(seen_key(message_id))

    def mark_routed(self, message_id: str, at: str, quiet: bool) -> dict[str, Any]:
        """Transaction item: ``message_id`` is routed (fails when it was before).

        Written with the routing decision on META, so a redelivered message is routed once
        and asks for the same reply again (``quiet``: none, the customer was acknowledged
        before). Nothing of the decision itself: ``SEEN`` outlives an erasure.
        """
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise(seen_key(message_id)),
                "UpdateExpression": "SET routed_at = :at, routing_quiet = :quiet",
                "ConditionExpression": "attribute_not_exists(routed_at)",
                "ExpressionAttributeValues": serialise({":at": at, ":quiet": quiet}),
            }
        }

    # -- routing's view: the conversation's facts, the decision's details --------- #
    def conversation_facts(self, conversation_id: str, consistent: bool = True) -> ConversationFacts | None:
        """Routing's typed view of the conversation (None when there is none); ``consistent=False``
        (half the price) where a version condition protects the write that follows."""
        meta = self.table.get(meta_key(conversation_id), consistent=consistent)
        return conversation_facts(meta) if meta is not None else None

    def put_decision(self, conversation_id: str, decision: RoutingDecision) -> None:
        """Keep ``decision`` whole on the conversation's ``DECISION`` item (META keeps it without
        the assistant's answer, citations and usage). Put before the META update recording the
        decision, on its own, once per message: a redelivery's attempt does not replace what
        the first one wrote (and may have sent)."""
        self.table.conditional(
            "put_item",
            Item=serialise(
                {
                    "pk": conversation_pk(conversation_id),
                    "sk": DECISION,
                    **decision.model_dump(exclude_defaults=True),
                }
            ),
            ConditionExpression="attribute_not_exists(message_id) OR message_id <> :m",
            ExpressionAttributeValues=serialise({":m": decision.message_id}),
        )

    def whole_decision(self, conversation_id: str, facts: ConversationFacts) -> RoutingDecision | None:
        """The latest decision ``facts`` record, whole (its details read from the ``DECISION``
        item only when META left them there)."""
        if facts.routing is None or not facts.routing_detailed:
            return facts.routing
        details = self.table.get({"pk": conversation_pk(conversation_id), "sk": DECISION})
        return joined_decision(facts_item(facts)["routing"], details)

    # -- messages ------------------------------------------------------------- #
    def messages(self, conversation_id: str, limit: int = 50) -> list[Message]:
        """The latest ``limit`` messages, oldest first."""
        items = self.table.query_all(
            limit=limit,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :msg)",
            ExpressionAttributeValues={
                ":pk": {"S": conversation_pk(conversation_id)},
                ":msg": {"S": MESSAGE_PREFIX},
            },
            ScanIndexForward=False,
            ConsistentRead=True,
        )
        return [message_of(i) for i in reversed(items)]

    def append_inbound(
        self,
        conversation_id: str,
        message_id: str,
        channel: str,
        text: str,
        sent_at: str,
        reply_to: Identity,
        attachments: list[dict[str, Any]] | None = None,
        received_at: str | None = None,
    ) -> InboundRecorded:
        """Append an inbound message, numbered among the conversation's inbound messages.

        Learns what the message did to the conversation (for the KPIs): ``channel_switch``
        (the previous inbound message came on another channel) and ``reopened`` (the
        conversation was resolved). A redelivery writes nothing and gives the number the
        message got when it was recorded (from its ``SEEN`` item).
        """
        learned: dict[str, Any] = {}
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

        def change(meta: dict[str, Any]) -> _Edit:
            # The conversation is META's: the message may go where an earlier attempt claimed it.
            conversation, target = meta["pk"], meta["conversation_id"]
            # Exact: the update is guarded by META's version.
            sequence = int(meta.get(INBOUND_SEQ, 0)) + 1
            learned["sequence"] = sequence
            # META as this edit leaves it (its facts ride on ``message.recorded``): no read after.
            after = {
                **meta,
                "message_count": int(meta.get("message_count", 0)) + 1,
                "last_inbound_channel": channel,
                "last_channel": channel,
                "last_inbound_at": sent_at,
                INBOUND_SEQ: sequence,
                "version": int(meta["version"]) + 1,
            }
            learned["after"] = after
            values: dict[str, Any] = {
                ":one": 1,
                ":channel": channel,
                ":ts": sent_at,
                ":seq": sequence,
            }
            expression = (
                "SET message_count = message_count + :one, last_inbound_channel = :channel, "
                f"last_channel = :channel, last_inbound_at = :ts, {INBOUND_SEQ} = :seq"
            )
            extra: list[dict[str, Any]] = []
            if meta.get("reply_to") != reply_to.model_dump():
                expression += ", reply_to = :reply_to"
                values[":reply_to"] = reply_to.model_dump()
                after["reply_to"] = reply_to.model_dump()
            if channel not in meta.get("channels", []):
                expression += ", channels = list_append(if_not_exists(channels, :empty), :channel_list)"
                values.update({":channel_list": [channel], ":empty": []})
                after["channels"] = [*meta.get("channels", []), channel]
            previous = meta.get("last_inbound_channel")
            learned.update(channel_switch=bool(previous and previous != channel), reopened=False)
            if previous and previous != channel:
                switch = ChannelSwitch(
                    from_channel=previous, to_channel=channel, at=sent_at, message_id=message_id
                )
                extra.append(
                    put_action(
                        self.table.name,
                        {"pk": conversation, "sk": switch_sk(meta["version"] + 1), **switch.model_dump()},
                    )
                )
                expression += ", switch_count = if_not_exists(switch_count, :zero) + :one"
                values[":zero"] = 0
            if sent_at > meta.get("last_message_at", ""):
                expression += ", last_message_at = :ts"
                after["last_message_at"] = sent_at
            status = meta.get("status")
            if starts_reply_wait(status, meta.get("waiting_since"), meta.get("queue")):
                # The customer now waits for the agent's reply: the SLA clock starts.
                expression += ", wait_queue = :queue, waiting_since = :ts, wait_kind = :reply"
                values.update({":queue": meta["queue"], ":reply": "reply"})
                after.update(wait_queue=meta["queue"], waiting_since=sent_at, wait_kind="reply")
            elif status == RESOLVED:
                # Resolved while this message was on its way: the customer is not finished.
                reopen = Transition(
                    at=sent_at,
                    from_status=RESOLVED,
                    to_status=OPEN,
                    by="customer",
                    reason="the customer wrote while the conversation was being resolved",
                    queue=meta.get("queue"),
                )
                expression += ", #status = :open, reopened_at = :ts, " + REOPEN_COUNT
                values.update({":open": OPEN, ":zero": 0})
                extra.append(history_put(self.table.name, target, meta["version"] + 1, reopen))
                learned["reopened"] = True
                after.update(status=OPEN, reopened_at=sent_at)
                for gone in ("resolved_at", "resolution"):
                    after.pop(gone, None)
                return _Edit(expression, values, ("resolved_at", "resolution"), extra, {"seq": sequence})
            return _Edit(expression, values, (), extra, {"seq": sequence})

        written = self._append(conversation_id, item, change)
        if isinstance(written, str):
            return InboundRecorded(
                written=True,
                conversation_id=written,
                sequence=learned["sequence"],
                channel_switch=learned["channel_switch"],
                reopened=learned["reopened"],
                conversation=recorded_facts(learned["after"]),
            )
        if written is None:
            return InboundRecorded(written=False, conversation_id=conversation_id)
        # Recorded before: its number is on the message item.
        number = written.get("seq")
        return InboundRecorded(
            written=False,
            conversation_id=str(written["pk"]).removeprefix("CONV#"),
            sequence=int(number) if number is not None else None,
        )

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
        provider_key: str | None = None,
    ) -> bool:
        """Append an outbound message (a reply, an acknowledgement); False if already there.

        ``citations``: the knowledge-base articles a bot answer came from. ``provider_key``
        (``<channel>#<provider message id>``, the form of an inbound message's key) makes the
        message findable by the provider's id: a reaction names that id."""
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
            answered = ends_reply_wait(author, meta.get("wait_kind"))
            alias = []
            if provider_key:
                seen = {
                    **seen_key(provider_key),
                    "conversation_id": conversation_id,
                    "message_sk": item["sk"],
                }
                alias.append({"Put": {"TableName": self.table.name, "Item": serialise(seen)}})
            return _Edit(
                expression,
                {":one": 1, ":ts": timestamp, ":channel": channel},
                WAIT_ATTRIBUTES if answered else (),
                alias,
            )

        return isinstance(self._append(conversation_id, item, change), str)

    def _append(
        self, conversation_id: str, item: dict[str, Any], change: Callable[[dict[str, Any]], _Edit]
    ) -> str | dict[str, Any] | None:
        """Write ``item`` and ``change`` to its conversation's META, once per message id.

        First the message's ``SEEN`` item is claimed, on its own (keyed by the message id
        alone: a provider retry with another timestamp, or one arriving after the conversation
        changed, is still recognised as the same message), then the message and the META
        update in one transaction, conditional on the message not being there. A crash between
        the two leaves a claim without a message: the redelivery writes the message where the
        claim says (its conversation and key), so concurrent deliveries collide on one key.

        Returns the conversation written to; when the message was recorded before, its item
        (or None when the message id was claimed by something that is not a message).
        """
        target = self._claim(conversation_id, item)
        if not isinstance(target, str):
            return target
        if target != conversation_id:
            item = {**item, "pk": conversation_pk(target)}
        key = meta_key(target)
        for _ in range(MAX_ATTEMPTS):
            meta = self.table.get(key)
            if meta is None:
                self._release(item, target)
                raise ConversationNotFound(target)
            edit = change(meta)
            cancelled = self.table.transact(
                [
                    {
                        "Put": {
                            "TableName": self.table.name,
                            "Item": serialise({**item, **edit.message}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {"Update": self._meta_update(key, meta, edit)},
                    *edit.extra,
                ]
            )
            if cancelled is None:
                return target
            if cancelled.condition_failed(0):
                return self.table.get({"pk": item["pk"], "sk": item["sk"]})  # written meanwhile
            if not cancelled.condition_failed():
                raise cancelled.error
            # META changed since we read it: read again
        raise ConcurrentUpdate(target)

    def _claim(self, conversation_id: str, item: dict[str, Any]) -> str | dict[str, Any] | None:
        """Claim ``item``'s ``SEEN`` item: the conversation to write the message to (and ``item``'s
        key is made the claimed one), else the message item recorded before (None: the id was
        claimed by something that is not a message)."""
        claim = {**seen_key(item["message_id"]), "conversation_id": conversation_id, "message_sk": item["sk"]}
        if self.table.put_new(claim):
            return conversation_id
        claimed = self.table.get(seen_key(item["message_id"])) or {}
        if not claimed.get("conversation_id") or not claimed.get("message_sk"):
            return None
        where, sk = str(claimed["conversation_id"]), str(claimed["message_sk"])
        recorded = self.table.get({"pk": conversation_pk(where), "sk": sk})
        if recorded is not None:
            return recorded
        # Claimed and never written (a crash between the two writes): write it as claimed.
        item["sk"] = sk
        item["timestamp"] = sk.removeprefix(MESSAGE_PREFIX).split("#", 1)[0]
        return where

    def _release(self, item: dict[str, Any], conversation_id: str) -> None:
        """Give up the claim of ``item`` for a conversation that is not there: a claim pointing to
        a missing conversation would mark the message as an erased person's."""
        self.table.conditional(
            "delete_item",
            Key=serialise(seen_key(item["message_id"])),
            ConditionExpression="conversation_id = :c AND message_sk = :sk",
            ExpressionAttributeValues=serialise({":c": conversation_id, ":sk": item["sk"]}),
        )

    def _meta_update(self, key: dict[str, str], meta: dict[str, Any], edit: _Edit) -> dict[str, Any]:
        """The version-guarded META update of ``edit``."""
        expression, values = edit.expression, dict(edit.values)
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
        return update

    # -- reactions ------------------------------------------------------------- #
    def set_reaction(self, target_key: str, emoji: str, at: str, by: str, customer_id: str) -> str | None:
        """The customer's reaction (``emoji``; empty: taken back) on the message ``target_key``
        (an inbound message's key, or an outbound one's ``provider_key``), stored on that message:
        ``reaction`` = ``{emoji, at, by}``, the latest kept. The conversation it changed, or None
        (an unknown message, another customer's, or a later reaction is recorded)."""
        seen = self.table.get(seen_key(target_key))
        if seen is None or not seen.get("message_sk"):
            return None
        meta = self.table.get(meta_key(seen["conversation_id"]))
        if meta is None or meta.get("customer_id") != customer_id:
            return None  # a reaction never reaches into another customer's conversation
        key = {"pk": conversation_pk(seen["conversation_id"]), "sk": seen["message_sk"]}
        fresh = "attribute_exists(pk) AND (attribute_not_exists(reaction) OR reaction.#at <= :at)"
        if emoji:
            changed = self.table.update_if(
                key,
                "SET reaction = :r",
                fresh,
                {":r": {"emoji": emoji, "at": at, "by": by}, ":at": at},
                {"#at": "at"},
            )
        else:
            changed = self.table.update_if(key, "REMOVE reaction", fresh, {":at": at}, {"#at": "at"})
        return str(seen["conversation_id"]) if changed else None

    # -- delivery statuses ------------------------------------------------------ #
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
        earlier = earlier_delivery_statuses(status)
        seen = self.table.get(seen_key(message_id))
        if seen is None or not seen.get("message_sk"):
            return False
        if conversation_id is not None and seen.get("conversation_id") != conversation_id:
            return False
        rank = MESSAGE_STATUS_RANK[status]
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
        return self.table.update_if(
            {"pk": conversation_pk(seen["conversation_id"]), "sk": seen["message_sk"]},
            expression,
            "attribute_exists(pk) AND direction = :outbound AND (status_rank < :rank OR "
            f"(attribute_not_exists(status_rank) AND ({unranked})))",
            values,
            {"#status": "status"},
        )

    # -- surveys ----------------------------------------------------------------- #
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
        item: dict[str, Any] = {
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
            reply = survey_reply(
                status=meta.get("status"),
                resolved_at=meta.get("resolved_at"),
                pending=meta.get("survey_pending"),
                answered=meta.get(survey),
                survey=survey,
                message_id=message_id,
            )
            if reply is SurveyReply.REDELIVERED:
                # This very message answered it (a redelivery): the write below finds it recorded.
                return _Edit(f"SET {survey} = :answer", {":answer": meta.get(survey)})
            if reply is SurveyReply.NOT_PENDING:
                raise _NotPending
            answer = {"score": score, "answered_at": sent_at, "message_id": message_id, "via": "reply"}
            return _Edit(
                f"SET message_count = message_count + :one, {survey} = :answer",
                {":one": 1, ":answer": answer},
                ("survey_pending",),
            )

        try:
            return isinstance(self._append(conversation_id, item, change), str)
        except _NotPending:
            return None

    def set_survey_pending(self, conversation_id: str, survey: str, resolved_at: str, asked_at: str) -> bool:
        """Mark the survey asked for the resolution at ``resolved_at``; False when the conversation
        is no longer resolved at that time (reopened, or resolved again)."""
        return self.table.update_if(
            meta_key(conversation_id),
            "SET survey_pending = :p, version = version + :one",
            "#status = :resolved AND resolved_at = :at",
            {
                ":p": {"survey": survey, "resolved_at": resolved_at, "asked_at": asked_at},
                ":resolved": RESOLVED,
                ":at": resolved_at,
                ":one": 1,
            },
            {"#status": "status"},
        )

    def store_survey_answer(self, conversation_id: str, survey: str, answer: dict[str, Any]) -> bool:
        """Store a survey answer given by link; False when the survey was answered before (the
        first answer wins). Clears the pending question of that survey."""
        return self.table.update_if(
            meta_key(conversation_id),
            "SET #survey = :answer, version = version + :one REMOVE survey_pending",
            "attribute_exists(pk) AND attribute_not_exists(#survey)",
            {":answer": answer, ":one": 1},
            {"#survey": survey},
        )

    def ces_answer_item(
        self, conversation_id: str, score: int, answered_at: str, message_id: str
    ) -> dict[str, Any]:
        """Transaction item storing a Customer Effort Score answer (1-7) on the conversation."""
        return {
            "Update": {
                "TableName": self.table.name,
                "Key": serialise(meta_key(conversation_id)),
                "UpdateExpression": "SET ces = :ces",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeValues": serialise(
                    {":ces": {"score": score, "answered_at": answered_at, "message_id": message_id}}
                ),
            }
        }
