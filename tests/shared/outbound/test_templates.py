"""Templates: versioned files, language fallback, variables validated before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.outbound.templates import (
    InvalidTemplate,
    MissingVariables,
    TemplateStore,
    UnknownTemplate,
    parse_template,
)

VARS = {"first_name": "Ana", "order_id": "A-17", "tracking_url": "https://t.example/A-17"}


def test_every_template_in_the_repository_is_valid() -> None:
    store = TemplateStore()
    names = store.names()
    assert {"order_shipped", "appointment_reminder", "spring_sale"} <= set(names)
    for name in names:
        template = store.get(name)
        assert template.version >= 1
        assert template.default_language in template.languages


@pytest.mark.parametrize(
    ("language", "resolved", "starts_with", "wa_language"),
    [
        ("en", "en", "Hi Ana", "en_US"),
        ("pt-BR", "pt-br", "Oi Ana", "pt_BR"),
        ("pt_BR", "pt-br", "Oi Ana", "pt_BR"),
        ("pt-PT", "pt", "Olá Ana", "pt_PT"),  # base language
        ("pt", "pt", "Olá Ana", "pt_PT"),
        ("de-AT", "en", "Hi Ana", "en_US"),  # default language
        (None, "en", "Hi Ana", "en_US"),
    ],
)
def test_language_fallback(language: str | None, resolved: str, starts_with: str, wa_language: str) -> None:
    rendered = TemplateStore().get("order_shipped").render(VARS, language)
    assert rendered.language == resolved
    assert rendered.text.startswith(starts_with)
    assert "A-17" in rendered.text
    assert "https://t.example/A-17" in rendered.text
    assert rendered.subject
    assert "A-17" in rendered.subject
    assert rendered.whatsapp is not None
    assert rendered.whatsapp.language == wa_language
    assert rendered.whatsapp.parameters == ("Ana", "A-17", "https://t.example/A-17")
    assert rendered.version == 1
    assert rendered.template == "order_shipped"


@pytest.mark.parametrize(
    ("variables", "missing"),
    [
        ({}, ["first_name", "order_id", "tracking_url"]),
        ({**VARS, "order_id": ""}, ["order_id"]),
        ({**VARS, "first_name": "   "}, ["first_name"]),
        ({"first_name": "Ana", "order_id": "A-17"}, ["tracking_url"]),
    ],
)
def test_missing_variables_are_a_clear_error(variables: dict[str, str], missing: list[str]) -> None:
    with pytest.raises(MissingVariables) as raised:
        TemplateStore().get("order_shipped").render(variables)
    assert raised.value.missing == missing
    assert raised.value.code == "missing_variables"
    assert ", ".join(missing) in str(raised.value)


def test_values_are_inserted_verbatim_never_formatted() -> None:
    rendered = TemplateStore().get("order_shipped").render({**VARS, "first_name": "{order_id} {0} %s"})
    assert rendered.text.startswith("Hi {order_id} {0} %s, your order A-17")


def test_a_language_without_whatsapp_template_renders_without_it() -> None:
    rendered = (
        TemplateStore()
        .get("appointment_reminder")
        .render({"first_name": "Eva", "date": "3 May", "time": "10:00", "place": "Rua A"}, "es")
    )
    assert rendered.whatsapp is None
    assert rendered.text.startswith("Hola Eva")


def test_unknown_templates() -> None:
    store = TemplateStore()
    with pytest.raises(UnknownTemplate):
        store.get("no_such_template")
    with pytest.raises(UnknownTemplate):
        store.get("../secrets")


BASE = {"name": "t", "version": 1, "default_language": "en", "variables": ["a"]}


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({**BASE, "languages": {"en": {"text": "{b}"}}}, "undeclared variables b"),
        ({**BASE, "languages": {"en": {"text": "{a.__class__}"}}}, "plain variable name"),
        ({**BASE, "languages": {"en": {"text": "{a!r}"}}}, "plain variable name"),
        ({**BASE, "languages": {"en": {"text": "{a:>10}"}}}, "plain variable name"),
        ({**BASE, "languages": {"en": {"text": "{0}"}}}, "plain variable name"),
        ({**BASE, "languages": {"en": {"text": "{a"}}}, "malformed placeholder"),
        ({**BASE, "languages": {"fr": {"text": "{a}"}}}, "default language 'en' has no text"),
        ({**BASE, "languages": {"en": {"subject": "x"}}}, "needs a text"),
        (
            {**BASE, "languages": {"en": {"text": "{a}", "whatsapp": {"name": "t", "body": ["a"]}}}},
            "needs name and language",
        ),
        (
            {
                **BASE,
                "languages": {
                    "en": {"text": "{a}", "whatsapp": {"name": "t", "language": "en", "body": ["z"]}}
                },
            },
            "undeclared variables z",
        ),
        ({"name": "t", "languages": {}}, "needs name, version"),
    ],
)
def test_invalid_templates_are_refused_at_load(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(InvalidTemplate, match=problem):
        parse_template(raw)


def test_literal_braces(tmp_path: Path) -> None:
    (tmp_path / "braces.toml").write_text(
        'name = "braces"\nversion = 2\ndefault_language = "en"\nvariables = ["a"]\n'
        '[languages.en]\ntext = "{{literal}} {a}"\n'
    )
    rendered = TemplateStore(tmp_path).get("braces").render({"a": "x"})
    assert rendered.text == "{literal} x"
    assert rendered.version == 2


def test_file_name_must_match_template_name(tmp_path: Path) -> None:
    (tmp_path / "one.toml").write_text(
        'name = "other"\nversion = 1\ndefault_language = "en"\n[languages.en]\ntext = "x"\n'
    )
    with pytest.raises(InvalidTemplate, match="declares name"):
        TemplateStore(tmp_path).get("one")
