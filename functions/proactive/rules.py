"""The proactive rules: configuration (``functions/proactive/proactive_rules.toml``), validated at load.

:func:`load_proactive_rules` refuses a bad file with a :class:`ProactiveConfigError` that lists
every problem with the path of its entry (``rules[0].event: unknown event 'page.clicked'``).
``OMNI_PROACTIVE_RULES`` may name another file (a test's, or an operator's override).
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from functions.proactive.events import EVENT_FIELDS, BehaviourDetail
from shared.contracts.names import BEHAVIOUR_EVENTS, ORDER_STATUS_CHECKED, PAGE_VIEWED
from shared.domain.rules_file import load_toml
from shared.platform import settings

DEFAULT_PATH = Path(__file__).with_name("proactive_rules.toml")
RULES_PATH_ENV = settings.OMNI_PROACTIVE_RULES


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


def placeholders(text: str) -> set[str]:
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
    name = _rule_name(raw.get("name"), path, problems)
    event, action, once_per, per = _choices(raw, path, problems)
    count = _int(raw, "count", path, 1, 1, 100, problems)
    within = _int(raw, "within_hours", path, 24, 1, 24 * 31, problems)
    priority = _int(raw, "priority", path, 0, 0, 9, problems)
    patterns = _patterns(raw.get("match", []), path, problems)
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
        match=patterns,
        template=template if isinstance(template, str) else None,
        variables=variables,
        fallback=fallback,
        queue=queue if isinstance(queue, str) else None,
        priority=priority,
        note=note if isinstance(note, str) else "",
    )


def _rule_name(name: Any, path: str, problems: list[str]) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{path}.name: must be lower_snake_case (letters, digits, _), not {name!r}")
        return ""
    return name


def _choices(raw: dict[str, Any], path: str, problems: list[str]) -> tuple[Any, Any, Any, Any]:
    """``event``, ``action``, ``once_per`` and ``per``: each one of a fixed set (problems noted)."""
    event = raw.get("event")
    if event not in BEHAVIOUR_EVENTS:
        problems.append(f"{path}.event: unknown event {event!r} (one of {', '.join(BEHAVIOUR_EVENTS)})")
    action = raw.get("action")
    if action not in ("notify", "agent_task"):
        problems.append(f"{path}.action: must be 'notify' or 'agent_task', not {action!r}")
    once_per = raw.get("once_per", "window")
    if once_per not in ("window", "day"):
        problems.append(f"{path}.once_per: must be 'window' or 'day', not {once_per!r}")
    per = raw.get("per")
    if per is not None and per not in EVENT_FIELDS:
        problems.append(f"{path}.per: must be one of {', '.join(EVENT_FIELDS)}, not {per!r}")
    return event, action, once_per, per


def _patterns(match: Any, path: str, problems: list[str]) -> tuple[re.Pattern[str], ...]:
    if not isinstance(match, list) or not all(isinstance(m, str) and m for m in match):
        problems.append(f"{path}.match: must be a list of regular expressions")
        return ()
    patterns: list[re.Pattern[str]] = []
    for i, expression in enumerate(match):
        try:
            patterns.append(re.compile(expression, re.IGNORECASE))
        except re.error as exc:
            problems.append(f"{path}.match[{i}]: not a valid regular expression: {exc}")
    return tuple(patterns)


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
                used = placeholders(text)
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
    return load_toml(
        path, parse_proactive_rules, lambda source, problem: ProactiveConfigError(source, [problem])
    )
