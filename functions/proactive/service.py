"""Proactive service: behaviour events from the company's systems turned into actions.

Business systems publish behaviour events to the bus with a source starting with
``omni.`` (e.g. ``omni.shop``) - the bus rules only take that prefix:

* ``order.status_checked`` ``{"customer_id" | "identity": {"type", "value"}, "order_id",
  "at", "tracking_url"?, "status"?}`` - the customer looked at an order's status;
* ``page.viewed`` ``{"customer_id" | "identity", "url" and/or "page", "at"}`` - the
  customer viewed a page of the company's site.

``at`` is an ISO 8601 timestamp with a time zone. The customer is ``customer_id`` or the
owner of ``identity`` (normalised like every identity, e.g. ``phone`` to E.164).

The rules are configuration (``functions/proactive/proactive_rules.toml``, validated at load by
:func:`load_proactive_rules`). Counting (:func:`count_event`) is a pure function over a
small per-customer item; :class:`Proactive` applies what fires: a
``notification.requested`` (idempotent ``notification_id`` from the rule, customer, key
and window) or a retention task - the customer's conversation put in a queue for an
agent with an internal note, once per customer and day.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.contracts.events import Identity, IdentityType, NotificationRequested, format_timestamp
from shared.contracts.names import BEHAVIOUR_EVENTS, NOTIFICATION_REQUESTED, ORDER_STATUS_CHECKED, PAGE_VIEWED

if TYPE_CHECKING:
    from shared.repositories.behaviour import BehaviourRepository
    from shared.services.desk import Desk

DEFAULT_PATH = Path(__file__).with_name("proactive_rules.toml")
RULES_PATH_ENV = "OMNI_PROACTIVE_RULES"
#: Events kept per counted item (more than any sensible ``count``).
MAX_CHECKS = 50

Events = list[tuple[str, BaseModel]]

# --------------------------------------------------------------------------- #
# The events (the documented schema)
# --------------------------------------------------------------------------- #

_Text = Annotated[str, Field(min_length=1, max_length=200)]


class CustomerRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    type: IdentityType
    value: Annotated[str, Field(min_length=1, max_length=320)]


class BehaviourDetail(BaseModel):
    """Detail of ``order.status_checked`` and ``page.viewed``. Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    customer_id: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    identity: CustomerRef | None = None
    at: AwareDatetime
    order_id: _Text | None = None
    status: _Text | None = None
    tracking_url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    page: _Text | None = None

    @model_validator(mode="after")
    def _customer(self) -> BehaviourDetail:
        if self.customer_id is None and self.identity is None:
            raise ValueError("give customer_id or identity")
        return self


#: Fields each event type must carry (one of each tuple).
REQUIRED: dict[str, tuple[tuple[str, ...], ...]] = {
    ORDER_STATUS_CHECKED: (("order_id",),),
    PAGE_VIEWED: (("url", "page"),),
}
#: Event fields a rule may count by and use in template variables.
EVENT_FIELDS = ("order_id", "status", "tracking_url", "url", "page")


class InvalidBehaviourEvent(ValueError):
    pass


def check_event(detail_type: str, detail: BehaviourDetail) -> None:
    """Raise :class:`InvalidBehaviourEvent` when ``detail`` lacks what its type requires."""
    if detail_type not in REQUIRED:
        raise InvalidBehaviourEvent(f"unknown behaviour event {detail_type!r}")
    for alternatives in REQUIRED[detail_type]:
        if all(getattr(detail, name) is None for name in alternatives):
            raise InvalidBehaviourEvent(f"{detail_type} needs {' or '.join(alternatives)}")


# --------------------------------------------------------------------------- #
# The rules
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ProactiveRule:
    name: str
    event: str
    action: Literal["notify", "agent_task"]
    count: int = 1
    within_hours: int = 24
    once_per: Literal["window", "day"] = "window"
    per: str | None = None
    match: tuple[re.Pattern[str], ...] = ()
    template: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)
    queue: str | None = None
    priority: int = 0
    note: str = ""

    def applies_to(self, detail_type: str, detail: BehaviourDetail) -> bool:
        if detail_type != self.event:
            return False
        if self.per is not None and getattr(detail, self.per) is None:
            return False
        if self.match:
            values = [v for v in (detail.page, detail.url) if v]
            return any(p.search(v) for p in self.match for v in values)
        return True


@dataclass(frozen=True)
class ProactiveRules:
    version: int
    rules: tuple[ProactiveRule, ...]

    def for_event(self, detail_type: str, detail: BehaviourDetail) -> list[ProactiveRule]:
        return [r for r in self.rules if r.applies_to(detail_type, detail)]


class ProactiveConfigError(ValueError):
    """The proactive rules are invalid; ``problems`` says where and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"invalid proactive rules in {source}:\n  " + "\n  ".join(problems))
        self.source = source
        self.problems = problems


_RULE_KEYS = {
    "name",
    "event",
    "action",
    "count",
    "within_hours",
    "once_per",
    "per",
    "match",
    "template",
    "variables",
    "fallback",
    "queue",
    "priority",
    "note",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
#: Placeholders every event of a type can fill (the rest need a ``fallback``).
_ALWAYS = {
    ORDER_STATUS_CHECKED: {"customer_id", "order_id"},
    PAGE_VIEWED: {"customer_id"},
}
_PLACEHOLDERS = {"customer_id", "first_name", *EVENT_FIELDS}


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def parse_proactive_rules(data: dict[str, Any], source: str = "<rules>") -> ProactiveRules:
    problems: list[str] = []
    version = data.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        problems.append(f"version: must be a whole number >= 1, not {version!r}")
        version = 0
    unknown_top = set(data) - {"version", "rules"}
    if unknown_top:
        problems.append(f"unknown keys {sorted(unknown_top)}")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ProactiveConfigError(source, [*problems, "rules: must be an array of tables ([[rules]])"])
    rules: list[ProactiveRule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        path = f"rules[{index}]"
        before = len(problems)
        rule = _parse_rule(raw, path, problems)
        if rule is not None and len(problems) == before:
            if rule.name in seen:
                problems.append(f"{path}.name: duplicate rule name {rule.name!r}")
            seen.add(rule.name)
            rules.append(rule)
    if problems:
        raise ProactiveConfigError(source, problems)
    return ProactiveRules(version=int(version), rules=tuple(rules))


def _int(
    raw: dict[str, Any], key: str, path: str, default: int, low: int, high: int, problems: list[str]
) -> int:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(f"{path}.{key}: must be a whole number from {low} to {high}, not {value!r}")
        return default
    return value


def _strings(raw: Any, where: str, problems: list[str]) -> dict[str, str]:
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        problems.append(f'{where}: must be a table of name = "text"')
        return {}
    return dict(raw)


def _parse_rule(raw: Any, path: str, problems: list[str]) -> ProactiveRule | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be a table")
        return None
    unknown = set(raw) - _RULE_KEYS
    if unknown:
        problems.append(f"{path}: unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{path}.name: must be lower_snake_case (letters, digits, _), not {name!r}")
        name = ""
    event = raw.get("event")
    if event not in BEHAVIOUR_EVENTS:
        problems.append(f"{path}.event: unknown event {event!r} (one of {', '.join(BEHAVIOUR_EVENTS)})")
    action = raw.get("action")
    if action not in ("notify", "agent_task"):
        problems.append(f"{path}.action: must be 'notify' or 'agent_task', not {action!r}")
    count = _int(raw, "count", path, 1, 1, 100, problems)
    within = _int(raw, "within_hours", path, 24, 1, 24 * 31, problems)
    priority = _int(raw, "priority", path, 0, 0, 9, problems)
    once_per = raw.get("once_per", "window")
    if once_per not in ("window", "day"):
        problems.append(f"{path}.once_per: must be 'window' or 'day', not {once_per!r}")
    per = raw.get("per")
    if per is not None and per not in EVENT_FIELDS:
        problems.append(f"{path}.per: must be one of {', '.join(EVENT_FIELDS)}, not {per!r}")
    patterns: list[re.Pattern[str]] = []
    match = raw.get("match", [])
    if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
        problems.append(f"{path}.match: must be a list of regular expressions")
    else:
        for i, expression in enumerate(match):
            try:
                patterns.append(re.compile(expression, re.IGNORECASE))
            except re.error as exc:
                problems.append(f"{path}.match[{i}]: not a valid regular expression: {exc}")
    variables = _strings(raw.get("variables", {}), f"{path}.variables", problems)
    fallback = _strings(raw.get("fallback", {}), f"{path}.fallback", problems)
    template = raw.get("template")
    queue = raw.get("queue")
    note = raw.get("note", "")
    if action == "notify":
        _check_notify(path, template, variables, fallback, event, problems)
    elif action == "agent_task":
        _check_task(path, queue, note, problems)
    if problems and name == "":
        return None
    return ProactiveRule(
        name=name,
        event=str(event),
        action=action,  # type: ignore[arg-type]
        count=count,
        within_hours=within,
        once_per=once_per,  # type: ignore[arg-type]
        per=per,
        match=tuple(patterns),
        template=template if isinstance(template, str) else None,
        variables=variables,
        fallback=fallback,
        queue=queue if isinstance(queue, str) else None,
        priority=priority,
        note=note if isinstance(note, str) else "",
    )


def _check_notify(
    path: str,
    template: Any,
    variables: dict[str, str],
    fallback: dict[str, str],
    event: Any,
    problems: list[str],
) -> None:
    from shared.outbound.templates import TemplateError, TemplateStore  # noqa: PLC0415 - load time only

    if not isinstance(template, str) or not template:
        problems.append(f"{path}.template: is required for action 'notify'")
        return
    try:
        needed = set(TemplateStore().get(template).variables)
    except TemplateError as exc:
        problems.append(f"{path}.template: {exc}")
        return
    missing = sorted(needed - variables.keys())
    if missing:
        problems.append(f"{path}.variables: template {template!r} needs {', '.join(missing)}")
    always = _ALWAYS.get(str(event), {"customer_id"})
    for where, values in (("variables", variables), ("fallback", fallback)):
        for var, text in values.items():
            try:
                used = _placeholders(text)
            except ValueError as exc:
                problems.append(f"{path}.{where}.{var}: {exc}")
                continue
            unknown = used - _PLACEHOLDERS
            if unknown:
                problems.append(f"{path}.{where}.{var}: unknown placeholder(s) {sorted(unknown)}")
            elif where == "variables" and not used <= always and var not in fallback:
                problems.append(
                    f"{path}.variables.{var}: {sorted(used - always)} may be missing from the event; "
                    f"give fallback.{var}"
                )
            elif where == "fallback" and not used <= always:
                problems.append(f"{path}.fallback.{var}: may only use {sorted(always)}")


def _check_task(path: str, queue: Any, note: Any, problems: list[str]) -> None:
    from shared.domain.routing_rules import RoutingConfigError, load_rules  # noqa: PLC0415 - load time only

    if not isinstance(note, str) or not note.strip():
        problems.append(f"{path}.note: is required for action 'agent_task'")
    if not isinstance(queue, str) or not queue:
        problems.append(f"{path}.queue: is required for action 'agent_task'")
        return
    try:
        queues = load_rules().queues
    except RoutingConfigError as exc:
        problems.append(f"{path}.queue: the routing rules do not load: {exc}")
        return
    if queue not in queues:
        problems.append(f"{path}.queue: unknown queue {queue!r} (routing rules: {', '.join(sorted(queues))})")


def load_proactive_rules(path: str | Path | None = None) -> ProactiveRules:
    """The rules in ``path`` (default: ``$OMNI_PROACTIVE_RULES`` or the packaged file), cached."""
    chosen = Path(path or os.environ.get(RULES_PATH_ENV) or DEFAULT_PATH)
    return _load(str(chosen.resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> ProactiveRules:
    import tomllib  # noqa: PLC0415 - rules and templates are read on first use, not at import

    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ProactiveConfigError(path, ["the file does not exist"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProactiveConfigError(path, [f"not valid TOML: {exc}"]) from None
    return parse_proactive_rules(data, path)


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
        needed = _placeholders(text)
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
        self, behaviour: BehaviourRepository, desk: Desk, rules: ProactiveRules | None = None
    ) -> None:
        self.behaviour = behaviour
        self.desk = desk
        self.rules = rules or load_proactive_rules()

    def customer_of(self, detail: BehaviourDetail) -> str | None:
        """The customer the event is about (following merges), or None when unknown."""
        from shared.domain.identity import InvalidIdentity, normalise  # noqa: PLC0415 - phonenumbers only when needed

        customers = self.desk.customers
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
        profile = self.desk.customers.get_profile(customer_id) or {}
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

        conversations = self.desk.conversations
        conversation_id = None
        for _ in range(3):
            candidate = new_id("conv")
            window = self.desk.rules.reopen_window_hours
            if conversations.open_for(customer_id, candidate, now, "proactive", window):
                conversation_id = candidate
                break
            conversation_id = (self.desk.customers.get_profile(customer_id) or {}).get("open_conversation_id")
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
        profile = self.desk.customers.get_profile(customer_id) or {}
        handover = self.desk.handover(customer_id, conversation_id, decision, profile, now)
        handover = handover.model_copy(update={"summary": f"Proactive: {note_text}. {handover.summary}"})

        def decide(meta: dict[str, Any]) -> Any:
            from shared.repositories.conversations import Change  # noqa: PLC0415

            done = list(meta.get("proactive_actions", []))
            if fired in done:
                return Change(noop=True)
            if meta.get("status") in ("open", "bot"):
                change = self.desk.enqueue_change(
                    meta, queue, rule.priority, now, by="proactive", reason=f"proactive: {rule.note}"
                )
                change.handover = handover.model_dump(exclude_none=True)
                if not meta.get("routing"):
                    change.set["routing"] = decision.model_dump(exclude_none=True)
            else:
                change = Change()  # already with a queue or an agent: the note tells them
            change.set["proactive_actions"] = [*done, fired]
            return change

        conversations.update_meta(conversation_id, decide)
        conversations.add_note(
            conversation_id,
            Note(note_id=fired, author=f"proactive:{rule.name}", text=note_text, at=when),
        )
        return self.desk.assign_waiting(conversation_id, now)
