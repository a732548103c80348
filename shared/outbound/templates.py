"""Message templates: versioned in the repository (``shared/templates/<name>.toml``), per language.

A template file declares its ``name``, ``version``, ``default_language``, the
``variables`` it needs, and one ``[languages.<code>]`` table per language with the
``text`` (every channel), an optional e-mail ``subject`` and an optional ``whatsapp``
table naming the template approved at Meta (``name``, ``language``, and ``body``: the
variables that fill ``{{1}}``, ``{{2}}``, ... in order)::

    name = "order_shipped"
    version = 1
    default_language = "en"
    variables = ["first_name", "order_id"]

    [languages.en]
    text = "Hi {first_name}, order {order_id} has shipped."
    whatsapp = { name = "order_shipped", language = "en_US", body = ["first_name", "order_id"] }

Placeholders are plain ``{name}`` (``{{`` and ``}}`` for literal braces); anything else
(attributes, indexes, format specs) is refused when the file is loaded, so a template
cannot reach into a value. A language the customer speaks falls back to its base
language (``pt-BR`` -> ``pt``), then to the template's default. A variable that is
missing or blank is an error naming it: never an empty gap in a customer's message.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from shared.domain.rules_file import read_toml

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_formatter = string.Formatter()


class TemplateError(Exception):
    """A template cannot be used as requested; ``code`` is machine-readable."""

    code = "template_error"


class UnknownTemplate(TemplateError):
    code = "unknown_template"


class InvalidTemplate(TemplateError):
    code = "invalid_template"


class MissingVariables(TemplateError):
    code = "missing_variables"

    def __init__(self, template: str, missing: list[str]) -> None:
        super().__init__(f"template {template!r} needs {', '.join(missing)}")
        self.missing = missing


def normalise_language(code: str) -> str:
    return code.strip().replace("_", "-").lower()


@dataclass(frozen=True)
class WhatsAppTemplate:
    """An approved WhatsApp template: its name and language at Meta, and its body parameters."""

    name: str
    language: str
    parameters: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rendered:
    template: str
    version: int
    language: str
    text: str
    subject: str | None = None
    whatsapp: WhatsAppTemplate | None = None


@dataclass(frozen=True)
class _Variant:
    text: str
    subject: str | None
    whatsapp_name: str | None
    whatsapp_language: str | None
    whatsapp_body: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    name: str
    version: int
    default_language: str
    variables: tuple[str, ...]
    languages: Mapping[str, _Variant] = field(default_factory=dict)

    def resolve_language(self, wanted: str | None) -> str:
        if wanted:
            code = normalise_language(wanted)
            for candidate in (code, code.split("-")[0]):
                if candidate in self.languages:
                    return candidate
        return self.default_language

    def render(self, variables: Mapping[str, str], language: str | None = None) -> Rendered:
        missing = [name for name in self.variables if not str(variables.get(name, "")).strip()]
        if missing:
            raise MissingVariables(self.name, missing)
        code = self.resolve_language(language)
        variant = self.languages[code]
        whatsapp = None
        if variant.whatsapp_name and variant.whatsapp_language:
            whatsapp = WhatsAppTemplate(
                variant.whatsapp_name,
                variant.whatsapp_language,
                tuple(str(variables[name]) for name in variant.whatsapp_body),
            )
        return Rendered(
            template=self.name,
            version=self.version,
            language=code,
            text=_substitute(variant.text, variables),
            subject=_substitute(variant.subject, variables) if variant.subject else None,
            whatsapp=whatsapp,
        )


def _fields(text: str) -> list[str]:
    names = []
    try:
        parsed = list(_formatter.parse(text))
    except ValueError as exc:
        raise InvalidTemplate(f"malformed placeholder in {text!r}: {exc}") from exc
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not _FIELD.match(name):
            raise InvalidTemplate(f"placeholder {{{name}}} must be a plain variable name")
        names.append(name)
    return names


def _substitute(text: str, variables: Mapping[str, str]) -> str:
    out = []
    for literal, name, _, _ in _formatter.parse(text):
        out.append(literal)
        if name is not None:
            out.append(str(variables[name]))
    return "".join(out)


def parse_template(raw: Mapping[str, Any], source: str = "<template>") -> Template:
    """Build and validate a template from the parsed TOML; raises :class:`InvalidTemplate`."""
    try:
        name = str(raw["name"])
        version = int(raw["version"])
        default = normalise_language(str(raw["default_language"]))
        variables = tuple(str(v) for v in raw.get("variables", ()))
        languages_raw = raw["languages"]
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidTemplate(f"{source}: needs name, version, default_language, languages ({exc})") from exc
    if not _NAME.match(name):
        raise InvalidTemplate(f"{source}: bad template name {name!r}")
    declared = set(variables)
    languages: dict[str, _Variant] = {}
    for code, body in dict(languages_raw).items():
        if not isinstance(body, Mapping) or not isinstance(body.get("text"), str):
            raise InvalidTemplate(f"{source}: language {code!r} needs a text")
        used = _fields(body["text"]) + (_fields(body["subject"]) if body.get("subject") else [])
        wa = body.get("whatsapp") or {}
        wa_body = tuple(str(v) for v in wa.get("body", ()))
        undeclared = sorted((set(used) | set(wa_body)) - declared)
        if undeclared:
            raise InvalidTemplate(f"{source}: {code} uses undeclared variables {', '.join(undeclared)}")
        if wa and not (wa.get("name") and wa.get("language")):
            raise InvalidTemplate(f"{source}: {code}.whatsapp needs name and language")
        languages[normalise_language(code)] = _Variant(
            text=body["text"],
            subject=body.get("subject"),
            whatsapp_name=wa.get("name"),
            whatsapp_language=wa.get("language"),
            whatsapp_body=wa_body,
        )
    if default not in languages:
        raise InvalidTemplate(f"{source}: default language {default!r} has no text")
    return Template(name, version, default, variables, languages)


class TemplateStore:
    """The templates of one directory, loaded once per container."""

    def __init__(self, directory: Path = TEMPLATE_DIR) -> None:
        self.directory = directory

    def get(self, name: str) -> Template:
        if not _NAME.match(name):
            raise UnknownTemplate(f"no template {name!r}")
        return _load(self.directory / f"{name}.toml")

    def names(self) -> list[str]:
        return sorted(path.stem for path in self.directory.glob("*.toml"))


@cache
def _load(path: Path) -> Template:
    if not path.is_file():
        raise UnknownTemplate(f"no template {path.stem!r}")
    raw = read_toml(path, lambda source, problem: InvalidTemplate(f"{source}: {problem}"), path.name)
    template = parse_template(raw, path.name)
    if template.name != path.stem:
        raise InvalidTemplate(f"{path.name}: declares name {template.name!r}")
    return template
