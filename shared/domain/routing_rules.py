"""Routing rules as configuration: load ``shared/domain/routing_rules.toml`` and validate it.

The file is versioned with the code and packaged with ``shared/`` into every function's
zip. :func:`load_rules` turns it into frozen dataclasses and refuses a bad file with a
:class:`RoutingConfigError` that lists every problem with the path of its entry
(``intents[2].queue: unknown queue 'biling'``), so a typo fails the tests and the first
invocation loudly instead of routing customers nowhere.

``OMNI_ROUTING_RULES`` may name another file (a test's, or an operator's override).
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from shared.domain.rules_file import load_toml
from shared.platform import settings

DEFAULT_PATH = Path(__file__).with_name("routing_rules.toml")
RULES_PATH_ENV = settings.OMNI_ROUTING_RULES

Action = Literal["queue", "template", "order_status"]
ACTIONS: tuple[str, ...] = ("queue", "template", "order_status")
#: Variables the router supplies to each template it uses itself.
ROUTER_VARIABLES: dict[str, frozenset[str]] = {
    "acknowledgement": frozenset({"greeting", "team"}),
    "greeting_named": frozenset({"first_name"}),
    "greeting": frozenset(),
    "order_status": frozenset({"order_id", "status", "eta"}),
    "order_not_found": frozenset(),
}


class RoutingConfigError(ValueError):
    """The routing rules are invalid; ``problems`` says where and why."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"invalid routing rules in {source}:\n  " + "\n  ".join(problems))
        self.source = source
        self.problems = problems


@dataclass(frozen=True)
class Matcher:
    """Keywords and regular expressions per language."""

    keywords: dict[str, tuple[str, ...]] = field(default_factory=dict)
    patterns: dict[str, tuple[re.Pattern[str], ...]] = field(default_factory=dict)

    def compiled(self) -> list[tuple[str, re.Pattern[str]]]:
        """``(language, pattern)`` for every keyword and pattern, in the order written."""
        out = [(lang, keyword_pattern(k)) for lang, words in self.keywords.items() for k in words]
        out += [(lang, p) for lang, patterns in self.patterns.items() for p in patterns]
        return out


@dataclass(frozen=True)
class QueueRule:
    name: str
    skill: str
    sla_minutes: int
    reply_sla_minutes: int
    label: dict[str, str]
    overflow_to: str | None = None
    overflow_after_minutes: int | None = None


@dataclass(frozen=True)
class IntentRule:
    name: str
    action: Action
    matcher: Matcher
    queue: str | None = None
    template: str | None = None


@dataclass(frozen=True)
class Template:
    name: str
    variables: frozenset[str]
    texts: dict[str, str]


@dataclass(frozen=True)
class PriorityRule:
    max: int = 9
    vip_tag: str = "vip"
    vip: int = 3
    repeat_contact_days: int = 7
    repeat_contact: int = 1
    negative: int = 2
    negative_words: Matcher = field(default_factory=Matcher)


@dataclass(frozen=True)
class Closing:
    """What a customer writes to close a conversation the bot answered, in one language.

    A message closes it when every word is one of ``words`` or ``thanks`` and at least one is
    a ``thanks`` word: "thanks, that's all" and "danke" close; "ok" or "thanks, but the
    invoice is still wrong" do not.
    """

    thanks: frozenset[str]
    words: frozenset[str]


@dataclass(frozen=True)
class BotResolution:
    """When a conversation the bot answered counts as resolved by the bot (docs/kpis.md)."""

    #: The customer did not write again within this many minutes of the automated answer.
    after_minutes: int = 30
    closing: dict[str, Closing] = field(default_factory=dict)


#: Surveys the KPI function can ask after a resolution (one per deployment).
SURVEYS = ("ces", "csat")


@dataclass(frozen=True)
class RoutingRules:
    version: int
    default_language: str
    default_queue: str
    reopen_window_hours: int
    sticky_agent_days: int
    languages: dict[str, frozenset[str]]
    escalation: Matcher
    priority: PriorityRule
    queues: dict[str, QueueRule]
    intents: tuple[IntentRule, ...]
    templates: dict[str, Template]
    bot_resolution: BotResolution = field(default_factory=BotResolution)
    #: The survey asked after a resolution: ``ces`` (1-7) or ``csat`` (1-5).
    survey: str = "ces"
    #: At most one automatic acknowledgement per conversation within this many minutes,
    #: whatever the channel (0: no limit besides "not again while waiting in the same queue").
    acknowledgement_window_minutes: int = 60
    #: How many of the conversation's latest messages a hand-over carries (read per message:
    #: bounded, whatever the conversation's length).
    history_messages: int = 30

    def queue(self, name: str) -> QueueRule:
        return self.queues[name]

    def queues_for_skills(self, skills: dict[str, int]) -> list[QueueRule]:
        """The queues an agent with ``skills`` serves, most proficient skill first."""
        return sorted(
            (q for q in self.queues.values() if q.skill in skills),
            key=lambda q: (-skills[q.skill], q.name),
        )

    def render(self, template: str, language: str, **variables: str) -> str:
        """``template`` in ``language`` (else the default language) with ``variables`` filled in."""
        found = self.templates[template]
        missing = found.variables - variables.keys()
        if missing:
            raise KeyError(f"template {template!r} needs {sorted(missing)}")
        text = found.texts.get(language) or found.texts[self.default_language]
        return text.format(**{k: variables[k] for k in found.variables})

    def label(self, queue: str, language: str) -> str:
        labels = self.queues[queue].label
        return labels.get(language) or labels.get(self.default_language) or queue


def keyword_pattern(keyword: str) -> re.Pattern[str]:
    """Whole words; plural and past forms match too; a trailing ``*`` matches any ending."""
    keyword = keyword.lower()
    if keyword.endswith("*"):
        return re.compile(r"(?<!\w)" + re.escape(keyword[:-1]))
    return re.compile(r"(?<!\w)" + re.escape(keyword) + r"(?:s|es|d|ed|ing)?(?!\w)")


# --------------------------------------------------------------------------- #
# Loading and validation
# --------------------------------------------------------------------------- #


class _Checker:
    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def string(self, data: dict[str, Any], key: str, path: str, required: bool = True) -> str | None:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(f"{path}.{key}" if path else key, "is required")
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(f"{path}.{key}" if path else key, f"must be a non-empty string, not {value!r}")
            return None
        return value

    def integer(
        self, data: dict[str, Any], key: str, path: str, default: int | None = None, minimum: int = 0
    ) -> int | None:
        value = data.get(key, default)
        where = f"{path}.{key}" if path else key
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"must be a whole number, not {value!r}")
            return default
        if value < minimum:
            self.fail(where, f"must be at least {minimum}, not {value}")
            return default
        return value

    def words(self, value: Any, path: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
            self.fail(path, "must be a list of non-empty strings")
            return ()
        return tuple(w.strip().lower() for w in value)

    def matcher(self, data: dict[str, Any], path: str, languages: set[str]) -> Matcher:
        keywords: dict[str, tuple[str, ...]] = {}
        patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
        for kind in ("keywords", "patterns"):
            section = data.get(kind, {})
            if not isinstance(section, dict):
                self.fail(f"{path}.{kind}", "must be a table of language = [...]")
                continue
            for lang, value in section.items():
                where = f"{path}.{kind}.{lang}"
                if lang not in languages:
                    self.fail(where, f"unknown language {lang!r} (declared: {sorted(languages)})")
                items = self.words(value, where)
                if kind == "keywords":
                    keywords[lang] = items
                    continue
                compiled = []
                for i, raw in enumerate(value if isinstance(value, list) else []):
                    try:
                        compiled.append(re.compile(raw, re.IGNORECASE))
                    except (re.error, TypeError) as exc:
                        self.fail(f"{where}[{i}]", f"is not a valid regular expression: {exc}")
                patterns[lang] = tuple(compiled)
        return Matcher(keywords=keywords, patterns=patterns)


def _parse_queues(
    check: _Checker, data: dict[str, Any], default_language: str
) -> tuple[dict[str, QueueRule], str]:
    queues: dict[str, QueueRule] = {}
    raw_queues = data.get("queues", {})
    if not isinstance(raw_queues, dict) or not raw_queues:
        check.fail("queues", "must declare at least one queue")
        raw_queues = {}
    for name, raw in raw_queues.items():
        queue = _parse_queue(check, name, raw, default_language)
        if queue is not None:
            queues[name] = queue
    for queue in queues.values():
        _check_overflow(check, queue, queues)
    default_queue = check.string(data, "default_queue", "") or ""
    if queues and default_queue not in queues:
        check.fail("default_queue", f"unknown queue {default_queue!r}")

    return queues, default_queue


def _parse_queue(check: _Checker, name: str, raw: Any, default_language: str) -> QueueRule | None:
    path = f"queues.{name}"
    if not re.fullmatch(r"[a-z][a-z0-9_-]{0,40}", name):
        check.fail(path, "queue names are lowercase letters, digits, '-' and '_'")
    if not isinstance(raw, dict):
        check.fail(path, "must be a table")
        return None
    label = raw.get("label", {})
    if not isinstance(label, dict) or default_language not in label:
        check.fail(f"{path}.label", f"needs at least the default language ({default_language})")
        label = {}
    queue = QueueRule(
        name=name,
        skill=check.string(raw, "skill", path) or name,
        sla_minutes=check.integer(raw, "sla_minutes", path, minimum=0) or 0,
        reply_sla_minutes=check.integer(raw, "reply_sla_minutes", path, minimum=0) or 0,
        label={k: str(v) for k, v in label.items()},
        overflow_to=check.string(raw, "overflow_to", path, required=False),
        overflow_after_minutes=check.integer(raw, "overflow_after_minutes", path, minimum=1),
    )
    for key in ("sla_minutes", "reply_sla_minutes"):
        if key not in raw:
            check.fail(f"{path}.{key}", "is required")
    return queue


def _check_overflow(check: _Checker, queue: QueueRule, queues: dict[str, QueueRule]) -> None:
    path = f"queues.{queue.name}"
    if queue.overflow_to is None:
        return
    if queue.overflow_to not in queues:
        check.fail(f"{path}.overflow_to", f"unknown queue {queue.overflow_to!r}")
    elif queue.overflow_to == queue.name:
        check.fail(f"{path}.overflow_to", "a queue cannot overflow into itself")
    if queue.overflow_after_minutes is None:
        check.fail(f"{path}.overflow_after_minutes", "is required with overflow_to")


def _parse_templates(
    check: _Checker, data: dict[str, Any], default_language: str, known_languages: set[str]
) -> dict[str, Template]:
    templates: dict[str, Template] = {}
    raw_templates = data.get("templates", {})
    if not isinstance(raw_templates, dict):
        check.fail("templates", "must be a table")
        raw_templates = {}
    for name, raw in raw_templates.items():
        path = f"templates.{name}"
        if not isinstance(raw, dict):
            check.fail(path, "must be a table")
            continue
        declared = frozenset(check.words(raw.get("variables", []), f"{path}.variables"))
        texts = {k: v for k, v in raw.items() if k != "variables"}
        if default_language not in texts:
            check.fail(path, f"needs a text in the default language ({default_language})")
        for lang, text in texts.items():
            _check_template_text(check, f"{path}.{lang}", lang, text, declared, known_languages)
        templates[name] = Template(name=name, variables=declared, texts=dict(texts))
    for name, supplied in ROUTER_VARIABLES.items():
        if name not in templates:
            check.fail(f"templates.{name}", "is required by the router")
        elif templates[name].variables - supplied:
            extra = sorted(templates[name].variables - supplied)
            check.fail(f"templates.{name}.variables", f"the router does not supply {extra}")

    return templates


def _check_template_text(
    check: _Checker, where: str, lang: str, text: Any, declared: frozenset[str], known_languages: set[str]
) -> None:
    if lang not in known_languages:
        check.fail(where, f"unknown language {lang!r}")
    if not isinstance(text, str) or not text.strip():
        check.fail(where, "must be a non-empty string")
        return
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
    except ValueError as exc:
        check.fail(where, f"is not a valid template: {exc}")
        return
    if used - declared:
        check.fail(where, f"uses undeclared variables {sorted(used - declared)}")


def _parse_intents(
    check: _Checker,
    data: dict[str, Any],
    queues: dict[str, QueueRule],
    templates: dict[str, Template],
    known_languages: set[str],
) -> list[IntentRule]:
    intents: list[IntentRule] = []
    seen: set[str] = set()
    raw_intents = data.get("intents", [])
    if not isinstance(raw_intents, list):
        check.fail("intents", "must be an array of tables ([[intents]])")
        raw_intents = []
    for i, raw in enumerate(raw_intents):
        path = f"intents[{i}]"
        name = check.string(raw, "name", path) or f"#{i}"
        if name in seen:
            check.fail(f"{path}.name", f"duplicate intent {name!r}")
        seen.add(name)
        action = raw.get("action")
        if action not in ACTIONS:
            check.fail(f"{path}.action", f"must be one of {list(ACTIONS)}, not {action!r}")
            action = "queue"
        queue = check.string(raw, "queue", path, required=action in ("queue", "order_status"))
        if queue is not None and queues and queue not in queues:
            check.fail(f"{path}.queue", f"unknown queue {queue!r}")
        template = check.string(raw, "template", path, required=action == "template")
        if template is not None:
            if template not in templates:
                check.fail(f"{path}.template", f"unknown template {template!r}")
            elif templates[template].variables:
                check.fail(f"{path}.template", "an intent's answer cannot need variables")
        matcher = check.matcher(raw, path, known_languages)
        if not matcher.keywords and not matcher.patterns:
            check.fail(path, "needs keywords or patterns")
        unknown = set(raw) - {"name", "action", "queue", "template", "keywords", "patterns"}
        if unknown:
            check.fail(path, f"unknown keys {sorted(unknown)}")
        intents.append(IntentRule(name=name, action=action, matcher=matcher, queue=queue, template=template))

    return intents


def _parse_escalation_and_priority(
    check: _Checker, data: dict[str, Any], known_languages: set[str]
) -> tuple[Matcher, PriorityRule]:
    raw_escalation = data.get("escalation", {})
    escalation = check.matcher(
        raw_escalation if isinstance(raw_escalation, dict) else {}, "escalation", known_languages
    )
    if not escalation.keywords and not escalation.patterns:
        check.fail("escalation", "needs keywords: asking for a person must always reach one")

    raw_priority = data.get("priority", {})
    if not isinstance(raw_priority, dict):
        check.fail("priority", "must be a table")
        raw_priority = {}
    defaults = PriorityRule()
    priority = PriorityRule(
        max=check.integer(raw_priority, "max", "priority", defaults.max, minimum=1) or defaults.max,
        vip_tag=check.string(raw_priority, "vip_tag", "priority", required=False) or defaults.vip_tag,
        vip=check.integer(raw_priority, "vip", "priority", defaults.vip) or 0,
        repeat_contact_days=check.integer(
            raw_priority, "repeat_contact_days", "priority", defaults.repeat_contact_days
        )
        or 0,
        repeat_contact=check.integer(raw_priority, "repeat_contact", "priority", defaults.repeat_contact)
        or 0,
        negative=check.integer(raw_priority, "negative", "priority", defaults.negative) or 0,
        negative_words=check.matcher(
            {"keywords": raw_priority.get("negative_words", {})}, "priority.negative_words", known_languages
        ),
    )
    if priority.max > 9:
        check.fail("priority.max", "must be at most 9 (one digit in the queue order)")

    return escalation, priority


def _parse_bot_resolution(check: _Checker, data: dict[str, Any], languages: set[str]) -> BotResolution:
    section = data.get("bot_resolution", {})
    if not isinstance(section, dict):
        check.fail("bot_resolution", "must be a table")
        return BotResolution()
    after = check.integer(section, "after_minutes", "bot_resolution", 30, minimum=1)
    closing: dict[str, Closing] = {}
    raw = section.get("closing", {})
    if not isinstance(raw, dict):
        check.fail("bot_resolution.closing", "must be a table of language = {thanks = [...], words = [...]}")
        raw = {}
    for lang, entry in raw.items():
        where = f"bot_resolution.closing.{lang}"
        if lang not in languages:
            check.fail(where, f"unknown language {lang!r} (declared: {sorted(languages)})")
        if not isinstance(entry, dict):
            check.fail(where, "must be a table with thanks = [...] and words = [...]")
            continue
        unknown = set(entry) - {"thanks", "words"}
        if unknown:
            check.fail(where, f"unknown keys {sorted(unknown)}")
        thanks = check.words(entry.get("thanks"), f"{where}.thanks")
        if "thanks" in entry and not thanks:
            check.fail(f"{where}.thanks", "must name at least one word")
        words = check.words(entry.get("words", []), f"{where}.words")
        closing[lang] = Closing(thanks=frozenset(thanks), words=frozenset(words))
    return BotResolution(after_minutes=after or 30, closing=closing)


def _parse_survey(check: _Checker, data: dict[str, Any]) -> str:
    survey = data.get("survey", "ces")
    if survey not in SURVEYS:
        check.fail("survey", f"must be one of {list(SURVEYS)}, not {survey!r}")
        return "ces"
    return str(survey)


def parse_rules(data: dict[str, Any], source: str = "<rules>") -> RoutingRules:
    """Validate the parsed TOML ``data``; raise :class:`RoutingConfigError` listing every problem."""
    check = _Checker()
    version = check.integer(data, "version", "", minimum=1)
    if version is None:
        check.fail("version", "is required")

    raw_languages = data.get("languages", {})
    languages: dict[str, frozenset[str]] = {}
    if not isinstance(raw_languages, dict) or not raw_languages:
        check.fail("languages", "must declare at least one language with its marker words")
    else:
        for lang, words in raw_languages.items():
            languages[lang] = frozenset(check.words(words, f"languages.{lang}"))
    known_languages = set(languages)
    default_language = check.string(data, "default_language", "") or "en"
    if known_languages and default_language not in known_languages:
        check.fail("default_language", f"{default_language!r} is not a declared language")

    queues, default_queue = _parse_queues(check, data, default_language)
    templates = _parse_templates(check, data, default_language, known_languages)
    intents = _parse_intents(check, data, queues, templates, known_languages)
    escalation, priority = _parse_escalation_and_priority(check, data, known_languages)

    rules = RoutingRules(
        version=version or 0,
        default_language=default_language,
        default_queue=default_queue,
        reopen_window_hours=check.integer(data, "reopen_window_hours", "", 72, minimum=0) or 0,
        sticky_agent_days=check.integer(data, "sticky_agent_days", "", 14, minimum=0) or 0,
        languages=languages,
        escalation=escalation,
        priority=priority,
        queues=queues,
        intents=tuple(intents),
        templates=templates,
        bot_resolution=_parse_bot_resolution(check, data, known_languages),
        survey=_parse_survey(check, data),
        acknowledgement_window_minutes=check.integer(
            data, "acknowledgement_window_minutes", "", 60, minimum=0
        )
        or 0,
        history_messages=check.integer(data, "history_messages", "", 30, minimum=1) or 30,
    )
    if check.problems:
        raise RoutingConfigError(source, check.problems)
    return rules


def load_rules(path: str | Path | None = None) -> RoutingRules:
    """The rules in ``path`` (default: ``$OMNI_ROUTING_RULES`` or the packaged file), cached."""
    chosen = Path(path or os.environ.get(RULES_PATH_ENV) or DEFAULT_PATH)
    return _load(str(chosen.resolve()))


@lru_cache(maxsize=8)
def _load(path: str) -> RoutingRules:
    return load_toml(path, parse_rules, lambda source, problem: RoutingConfigError(source, [problem]))
