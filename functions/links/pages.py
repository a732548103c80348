"""What the links endpoint shows and reads: small self-contained HTML pages and the form body.

Pure functions (no AWS): the handler picks the page, these render it. Every value that
reaches a page is HTML-escaped; pages load nothing from elsewhere (no scripts, images,
fonts or style sheets), so opening one tells nobody else that the link was opened.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlencode

from shared.contracts.contact import ContactChoices, ContactChoicesPatch

#: The form content types a one-click POST arrives in (RFC 8058 allows both), and browsers send.
FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART_FORM = "multipart/form-data"
FORM_TYPES = (FORM_URLENCODED, MULTIPART_FORM)
#: The key/value pair of ``List-Unsubscribe-Post`` that one-click clients POST back.
ONE_CLICK_KEY, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
#: Labels of the survey scales' ends (the questions themselves are in the message).
SCALE_LABELS = {
    "ces": ("very difficult", "very easy"),
    "csat": ("very dissatisfied", "very satisfied"),
}
SURVEY_NAMES = {"ces": "How easy was it to get help?", "csat": "How satisfied are you with our help?"}
#: Headers of every page: never cached, never indexed, the token never leaks as a referrer,
#: nothing but the inline style may load, and the form may post only back here.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Robots-Tag": "noindex, nofollow",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
}
_STYLE = (
    "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:32rem;"
    "margin:3rem auto;padding:0 1rem;color:#1f2328;line-height:1.5}"
    "h1{font-size:1.4rem}button{font:inherit;padding:.6rem 1.2rem;margin:.2rem;border-radius:.4rem;"
    "border:1px solid #1f6feb;background:#1f6feb;color:#fff;cursor:pointer}"
    "button.score{min-width:3rem;background:#fff;color:#1f6feb}.muted{color:#59636e;font-size:.9rem}"
)


class BadForm(ValueError):
    """The POST body is not a form we can read (HTTP 400 with the reason)."""


@dataclass(frozen=True)
class Page:
    status: int
    title: str
    message: str
    #: The form's action (a relative URL: this path with its query) and its buttons.
    action: str | None = None
    buttons: tuple[tuple[str, str, str], ...] = ()  # (field name, value, label)
    hidden: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    #: Text inputs of the form: (field name, label, current value, hint).
    inputs: tuple[tuple[str, str, str, str], ...] = ()

    def render(self) -> str:
        parts = [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width,initial-scale=1">',
            '<meta name="robots" content="noindex,nofollow">',
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            f"<p>{html.escape(self.message)}</p>",
        ]
        if self.action is not None:
            parts.append(f'<form method="post" action="{html.escape(self.action, quote=True)}">')
            for name, value in self.hidden.items():
                parts.append(
                    f'<input type="hidden" name="{html.escape(name, quote=True)}" '
                    f'value="{html.escape(value, quote=True)}">'
                )
            for name, label, value, hint in self.inputs:
                parts.append(
                    f'<p><label>{html.escape(label)}<br><input name="{html.escape(name, quote=True)}" '
                    f'value="{html.escape(value, quote=True)}" placeholder="{html.escape(hint, quote=True)}">'
                    "</label></p>"
                )
            for name, value, label in self.buttons:
                css = ' class="score"' if name == "score" else ""
                named = f' name="{html.escape(name, quote=True)}" value="{html.escape(value, quote=True)}"'
                parts.append(
                    f'<button type="submit"{css}{named if name else ""}>{html.escape(label)}</button>'
                )
            parts.append("</form>")
        if self.note:
            parts.append(f'<p class="muted">{html.escape(self.note)}</p>')
        parts.append("</body></html>")
        return "\n".join(parts)


def form_action(token: str, score: int | None = None) -> str:
    """``?t=<token>[&score=<n>]``: the same path, so the POST goes where the link pointed."""
    query = {"t": token} | ({"score": str(score)} if score is not None else {})
    return "?" + urlencode(query)


def unsubscribe_confirm(token: str) -> Page:
    return Page(
        200,
        "Unsubscribe from our e-mails",
        "Press the button to stop receiving our e-mail notifications. "
        "Answers to messages you send us are not affected.",
        action=form_action(token),
        buttons=(("", "", "Unsubscribe"),),
        hidden={ONE_CLICK_KEY: ONE_CLICK_VALUE},
        note="Nothing changes until you press the button.",
    )


def unsubscribed() -> Page:
    return Page(
        200,
        "You are unsubscribed",
        "You will not receive our e-mail notifications any more. "
        "You can still write to us, and we will answer.",
    )


def survey_confirm(survey: str, token: str, score: int | None, scale: tuple[int, int]) -> Page:
    low, high = scale
    low_label, high_label = SCALE_LABELS[survey]
    question = SURVEY_NAMES[survey]
    if score is not None:
        return Page(
            200,
            question,
            f"Your answer: {score} on a scale from {low} ({low_label}) to {high} ({high_label}).",
            action=form_action(token, score),
            buttons=(("", "", "Send my answer"),),
            note="Nothing is sent until you press the button.",
        )
    return Page(
        200,
        question,
        f"Choose from {low} ({low_label}) to {high} ({high_label}).",
        action=form_action(token),
        buttons=tuple(("score", str(n), str(n)) for n in range(low, high + 1)),
    )


def preferences_form(token: str, current: ContactChoices) -> Page:
    """The customer's contact choices, to change (an empty field stays as it is)."""
    quiet = current.quiet_hours
    opted_out = [c for c, status in current.consent.items() if status == "opted_out"]
    return Page(
        200,
        "How and when we contact you",
        "Change what you like and press Save; a field left empty stays as it is.",
        action=form_action(token),
        buttons=(("", "", "Save"),),
        inputs=(
            (
                "channel_preferences",
                "Channels, in your order",
                ", ".join(current.channel_preferences),
                "sms, email",
            ),
            ("channel_mode", "first (the first that works) or all", current.channel_mode, "first"),
            ("timezone", "Time zone", current.timezone or "", "Europe/Berlin"),
            (
                "quiet_hours",
                "Quiet hours (or off)",
                f"{quiet.start}-{quiet.end}" if quiet else "",
                "22:00-07:00",
            ),
            ("language", "Language", current.language or "", "de"),
            ("opted_out", "Never contact me on", ", ".join(opted_out), "whatsapp"),
        ),
        note="Nothing changes until you press Save. Urgent messages (security codes) ignore quiet hours.",
    )


def preferences_saved() -> Page:
    return Page(200, "Saved", "Your choices apply to our next message.")


def preferences_patch(form: dict[str, str]) -> ContactChoicesPatch:
    """The choices a submitted preferences form makes; raises pydantic's ValidationError."""

    def listed(name: str) -> list[str]:
        return [c.strip().lower() for c in form.get(name, "").split(",") if c.strip()]

    data: dict[str, object] = {}
    if listed("channel_preferences"):
        data["channel_preferences"] = listed("channel_preferences")
    for name in ("channel_mode", "timezone", "language"):
        if form.get(name, "").strip():
            data[name] = form[name].strip()
    quiet = form.get("quiet_hours", "").strip()
    if quiet:
        start, _, end = ("00:00-00:00" if quiet.lower() == "off" else quiet).partition("-")
        data["quiet_hours"] = {"start": start.strip(), "end": end.strip()}
    if listed("opted_out"):
        data["consent"] = dict.fromkeys(listed("opted_out"), "opted_out")
    return ContactChoicesPatch.model_validate(data)


def thanks(score: int) -> Page:
    return Page(200, "Thank you", f"We received your answer ({score}). It helps us help you better.")


def problem(status: int, reason: str) -> Page:
    titles = {
        400: "This link does not work",
        403: "This link is not valid",
        404: "Nothing here",
        410: "This link has expired",
    }
    text = reason[:300].rstrip(".")
    return Page(status, titles.get(status, "Something went wrong"), f"{text[:1].upper()}{text[1:]}.")


def content_type_of(headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """The media type (lower case) and its parameters."""
    raw = next((v for k, v in headers.items() if k.lower() == "content-type"), "") or ""
    media, _, rest = raw.partition(";")
    params: dict[str, str] = {}
    for part in rest.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return media.strip().lower(), params


def parse_form(body: bytes, headers: dict[str, str]) -> dict[str, str]:
    """The fields of a form POST (the first value of each); ``{}`` for an empty body.

    ``application/x-www-form-urlencoded`` (what browsers and Gmail send) and
    ``multipart/form-data`` (RFC 8058's example) are read; anything else was refused
    with 415 before the handler ran.
    """
    if not body:
        return {}
    media, params = content_type_of(headers)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadForm("the form is not UTF-8 text") from exc
    if media == MULTIPART_FORM:
        return _multipart(body, params.get("boundary"))
    try:
        fields = parse_qs(text, keep_blank_values=True, strict_parsing=True, max_num_fields=20)
    except ValueError as exc:
        raise BadForm(f"the form is not {FORM_URLENCODED}: {exc}") from exc
    return {name: values[0] for name, values in fields.items()}


def _multipart(body: bytes, boundary: str | None) -> dict[str, str]:
    if not boundary:
        raise BadForm("the multipart form has no boundary")
    from email.parser import BytesParser  # noqa: PLC0415 - rare: most clients send url-encoded forms
    from email.policy import HTTP  # noqa: PLC0415

    head = f'Content-Type: multipart/form-data; boundary="{boundary}"\r\n\r\n'.encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise BadForm("the multipart form could not be read")
    fields: dict[str, str] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            raise BadForm("the multipart form has a part that is not a named text field")
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise BadForm("the multipart form could not be read")
        try:
            fields.setdefault(name, payload.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise BadForm("the form is not UTF-8 text") from exc
        if len(fields) > 20:
            raise BadForm("the form has too many fields")
    if not fields:
        raise BadForm("the multipart form has no fields")
    return fields
