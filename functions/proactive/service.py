"""Proactive service: behaviour events from the company's systems turned into actions.

The events (:mod:`functions.proactive.events`) and the rules (:mod:`functions.proactive.rules`,
configuration in ``proactive_rules.toml``) are beside this module. Counting
(:func:`count_event`) is a pure function over a small per-customer item; :class:`Proactive`
applies what fires: a ``notification.requested`` (idempotent ``notification_id`` from the
rule, customer, key and window) or a retention task - the customer's conversation put in a
queue for an agent with an internal note, once per customer and day.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from functions.proactive.events import EVENT_FIELDS, BehaviourDetail, InvalidBehaviourEvent, check_event
from functions.proactive.rules import ProactiveRule, ProactiveRules, load_proactive_rules, placeholders
from shared.contracts.events import Identity, NotificationRequested, format_timestamp
from shared.contracts.names import NOTIFICATION_REQUESTED

if TYPE_CHECKING:
    from shared.repositories.behaviour import BehaviourRepository
    from shared.repositories.conversation_aggregates import ConversationState
    from shared.repositories.conversations import ConversationRepository
    from shared.repositories.customers import CustomerRepository
    from shared.services.desk import Desk

#: Events kept per counted item (more than any sensible ``count``).
MAX_CHECKS = 50

Events = list[tuple[str, BaseModel]]

# --------------------------------------------------------------------------- #
# Counting (pure)
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class Counted:
    """What counting one event did: the item to write (None: unchanged) and the action that fired."""

    item: dict[str, Any] | None
    #: Idempotency key of the action to take (a new firing, or a redelivery of the firing event).
    fired: str | None = None


def _compact(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def action_id(rule: ProactiveRule, customer_id: str, per: str, window_start: datetime, at: datetime) -> str:
    """The action's idempotency key: rule, customer, key and window (or day)."""
    when = at.astimezone(UTC).strftime("%Y%m%d") if rule.once_per == "day" else _compact(window_start)
    return ":".join(p for p in ("proactive", rule.name, customer_id, per, when) if p)


def count_event(
    rule: ProactiveRule,
    current: dict[str, Any] | None,
    customer_id: str,
    per: str,
    event_id: str,
    at: datetime,
) -> Counted:
    """Count ``event_id`` at ``at`` into the item ``current``; say whether the rule fires.

    A redelivered event (its id already counted) changes nothing and repeats the firing it
    caused, if any (the action is idempotent). The rule fires when ``count`` events fall
    within ``within_hours`` up to ``at``, unless it already fired in the same window
    (``once_per = "window"``: less than ``within_hours`` before) or the same UTC day.
    """
    current = current or {}
    checks: list[dict[str, str]] = list(current.get("checks", []))
    if any(c.get("event_id") == event_id for c in checks):
        repeated = current.get("fired_id") if current.get("fired_event") == event_id else None
        return Counted(item=None, fired=repeated)
    window = timedelta(hours=rule.within_hours)
    stamp = format_timestamp(at)
    checks.append({"at": stamp, "event_id": event_id})
    checks.sort(key=lambda c: c["at"])
    latest_at = max(datetime.fromisoformat(checks[-1]["at"]), at)
    kept = [c for c in checks if c["at"] > format_timestamp(latest_at - window)][-MAX_CHECKS:]
    window_start = _window_with(kept, at, window, rule.count)
    item: dict[str, Any] = {k: v for k, v in current.items() if k in ("fired_at", "fired_id", "fired_event")}
    item["checks"] = kept
    latest = datetime.fromisoformat(kept[-1]["at"]) if kept else at
    # Kept until the window of the latest event has passed, and a day of fired state besides.
    item["expires_at"] = int((latest + window + timedelta(days=2)).timestamp())
    fired: str | None = None
    if window_start is not None and not _suppressed(rule, current.get("fired_at"), at):
        fired = action_id(rule, customer_id, per, window_start, at)
        item.update({"fired_at": stamp, "fired_id": fired, "fired_event": event_id})
    return Counted(item=item, fired=fired)


def _window_with(
    checks: list[dict[str, str]], at: datetime, window: timedelta, count: int
) -> datetime | None:
    """Start of the earliest ``window`` that holds ``at`` and at least ``count`` checks (events
    may arrive out of order, so later checks count too)."""
    times = [datetime.fromisoformat(c["at"]) for c in checks]
    for start in times:
        if start <= at < start + window and sum(1 for t in times if start <= t < start + window) >= count:
            return start
    return None


def _suppressed(rule: ProactiveRule, fired_at: str | None, at: datetime) -> bool:
    if not fired_at:
        return False
    last = datetime.fromisoformat(fired_at)
    if rule.once_per == "day":
        return last.astimezone(UTC).date() == at.astimezone(UTC).date()
    return at - last < timedelta(hours=rule.within_hours)


def fill_variables(rule: ProactiveRule, values: dict[str, str]) -> dict[str, str]:
    """The template variables from the event's and the profile's ``values`` (fallbacks for gaps)."""
    out: dict[str, str] = {}
    for name, text in rule.variables.items():
        needed = placeholders(text)
        if all(values.get(p) for p in needed):
            out[name] = text.format_map(values)
        else:
            out[name] = rule.fallback[name].format_map(values)
    return out


# --------------------------------------------------------------------------- #
# Applying the rules
# --------------------------------------------------------------------------- #


class Proactive:
    """Resolves the customer, counts the event for each rule, and acts on what fires."""

    def __init__(
        self,
        behaviour: BehaviourRepository,
        customers: CustomerRepository,
        conversations: ConversationRepository,
        desk: Desk,
        rules: ProactiveRules | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.customers = customers
        self.conversations = conversations
        self.desk = desk
        self.rules = rules or load_proactive_rules()

    def customer_of(self, detail: BehaviourDetail) -> str | None:
        """The customer the event is about (following merges), or None when unknown."""
        from shared.domain.identity import InvalidIdentity, normalise  # noqa: PLC0415 - phonenumbers only when needed

        customers = self.customers
        customer_id = detail.customer_id
        if customer_id is None and detail.identity is not None:
            try:
                identity = normalise(Identity(type=detail.identity.type, value=detail.identity.value))
            except InvalidIdentity as exc:
                raise InvalidBehaviourEvent(f"identity: {exc}") from exc
            customer_id = customers.owner_of(identity)
        for _ in range(10):  # a merged-away profile names its survivor
            if customer_id is None:
                return None
            profile = customers.get_profile(customer_id)
            if profile is None or profile.get("status") == "erased":
                return None
            if profile.get("merged_into"):
                customer_id = str(profile["merged_into"])
                continue
            return customer_id
        return None

    def handle(self, detail_type: str, event_id: str, detail: BehaviourDetail, now: str) -> Events:
        """The events to publish for one behaviour event (idempotent on ``event_id``)."""
        check_event(detail_type, detail)
        rules = self.rules.for_event(detail_type, detail)
        if not rules:
            return []
        customer_id = self.customer_of(detail)
        if customer_id is None:
            return []
        events: Events = []
        for rule in rules:
            per = str(getattr(detail, rule.per)) if rule.per else ""
            fired = self._count(rule, customer_id, per, event_id, detail.at)
            if fired is None:
                continue
            if rule.action == "notify":
                events.append(self._notification(rule, fired, customer_id, detail))
            else:
                events += self._task(rule, fired, customer_id, detail, now)
        return events

    def _count(
        self, rule: ProactiveRule, customer_id: str, per: str, event_id: str, at: datetime
    ) -> str | None:
        """Count the event in the rule's item; the action that fired (or None)."""
        outcome: list[Counted] = []

        def change(current: dict[str, Any] | None) -> dict[str, Any] | None:
            counted = count_event(rule, current, customer_id, per, event_id, at)
            outcome[:] = [counted]
            return counted.item

        self.behaviour.update(customer_id, rule.name, per, change)
        return outcome[-1].fired if outcome else None

    def _notification(
        self, rule: ProactiveRule, fired: str, customer_id: str, detail: BehaviourDetail
    ) -> tuple[str, BaseModel]:
        profile = self.customers.get_profile(customer_id) or {}
        name = str(profile.get("display_name") or "").strip()
        values = {
            "customer_id": customer_id,
            "first_name": name.split()[0] if name else "",
            **{f: str(getattr(detail, f)) for f in EVENT_FIELDS if getattr(detail, f) is not None},
        }
        return (
            NOTIFICATION_REQUESTED,
            NotificationRequested(
                notification_id=fired,
                customer_id=customer_id,
                kind="notification",
                template=rule.template,
                variables=fill_variables(rule, values),
                author=f"proactive:{rule.name}",
                correlation_id=fired,
            ),
        )

    def _task(
        self, rule: ProactiveRule, fired: str, customer_id: str, detail: BehaviourDetail, now: str
    ) -> Events:
        """Put the customer's conversation in the rule's queue with a note (once per ``fired``)."""
        from shared.contracts.models import Note, RoutingDecision  # noqa: PLC0415
        from shared.platform.ids import new_id  # noqa: PLC0415

        conversations = self.conversations
        conversation_id = None
        for _ in range(3):
            candidate = new_id("conv")
            window = self.desk.rules.reopen_window_hours
            if conversations.open_for(customer_id, candidate, now, "proactive", window):
                conversation_id = candidate
                break
            conversation_id = (self.customers.get_profile(customer_id) or {}).get("open_conversation_id")
            if conversation_id:
                break
        if not conversation_id:
            raise RuntimeError(f"no open conversation for customer {customer_id}")
        where = detail.page or detail.url or ""
        when = format_timestamp(detail.at)
        note_text = f"{rule.note} ({where}, {when})"
        queue = str(rule.queue)
        decision = RoutingDecision(
            queue=queue,
            intent=rule.name,
            reason=f"proactive: {rule.note}",
            automated=False,
            message_id=fired,
            decided_at=now,
            priority=rule.priority,
            priority_reasons=[f"proactive rule {rule.name}"] if rule.priority else [],
        )
        profile = self.customers.get_profile(customer_id) or {}
        handover = self.desk.handover(customer_id, conversation_id, decision, profile, now)
        handover = handover.model_copy(update={"summary": f"Proactive: {note_text}. {handover.summary}"})

        def attempt(state: ConversationState) -> bool:
            if fired in state.proactive_actions:
                return True
            if state.status not in ("open", "bot"):
                # Already with a queue or an agent: the note tells them.
                return conversations.proactive_action(state, fired, now, by="proactive", reason="")
            if queue not in self.desk.rules.queues:
                from shared.services.desk import UnknownQueue  # noqa: PLC0415 - loaded with the desk

                raise UnknownQueue(queue)
            return conversations.proactive_action(
                state,
                fired,
                now,
                by="proactive",
                reason=f"proactive: {rule.note}",
                queue=queue,
                priority=rule.priority,
                handover=handover,
                decision=None if state.routing else decision,
            )

        conversations.apply(conversation_id, attempt)
        conversations.add_note(
            conversation_id,
            Note(note_id=fired, author=f"proactive:{rule.name}", text=note_text, at=when),
        )
        return self.desk.assign_waiting(conversation_id, now)
