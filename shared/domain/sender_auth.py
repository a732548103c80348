"""Is an e-mail's ``From:`` address proven? Sender authentication as receivers practise it. Pure.

SES checks SPF, DKIM and DMARC and reports one verdict each (``PASS``, ``FAIL``, ``GRAY``,
``PROCESSING_FAILED``, ``DISABLED``). The From address counts as *verified* when:

1. **DMARC passes**: SPF or DKIM passed for a domain aligned with the From domain, and the
   domain's own policy says so; or
2. **DMARC is GRAY** (the From domain publishes no DMARC record, as many small companies'
   domains do) and one of DMARC's own alignment tests holds:

   * **DKIM passed** and the message's signing domains (the ``d=`` tag of its
     ``DKIM-Signature`` headers) are aligned with the From domain; with several
     signatures *every* one must be aligned, since SES's single verdict does not say
     which signature passed (a forger could add a failing signature of the victim's
     domain next to a passing one of their own); or
   * **SPF passed** for an envelope sender (``MAIL FROM``, SES's ``mail.source``, which
     is also the ``Return-Path`` SES writes on top of the stored mail) aligned with the
     From domain.

Everything else - DMARC ``FAIL`` (whatever SPF and DKIM say), ``PROCESSING_FAILED``,
``DISABLED``, a missing verdict, or GRAY without an aligned pass - leaves the address
*claimed*: recorded, found by look-ups, never able to open a verified customer's history.

Alignment is DMARC's *relaxed* alignment (RFC 7489 section 3.1): two domains are aligned
when they have the same organizational domain. The organizational domain is the public
suffix plus one label; without the Public Suffix List in the function zip,
:func:`organizational_domain` uses a small documented rule: the last two labels, or the
last three when the last two are a common second-level registry suffix (``co.uk``,
``com.au``, ``com.br``, ...). Its known gap: under a multi-label registry suffix it does
not list (``city.kawasaki.jp``, ``blogspot.com``) two registrants would look aligned; the
rule covers the suffixes of the countries we see most, and DMARC ``PASS``/``FAIL`` (SES's
own verdict, with the full list) is always decided by SES, not by this rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

#: Second-level labels that, under a two-letter country code, form a registry suffix
#: (``co.uk``, ``com.br``, ``ac.jp``, ``gov.au``): the organizational domain has one more label.
_SECOND_LEVEL = frozenset(
    {
        "co",
        "com",
        "net",
        "org",
        "gov",
        "edu",
        "ac",
        "or",
        "ne",
        "go",
        "gob",
        "mil",
        "nom",
        "ltd",
        "plc",
        "sch",
    }
)
#: Complete two-label public suffixes that do not follow the country-code pattern above.
_TWO_LABEL_SUFFIXES = frozenset({"com.de", "co.com", "us.com", "uk.com", "eu.com", "gr.com", "de.com"})
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")

Method = Literal["dmarc", "dkim", "spf"]


def _labels(domain: str) -> list[str] | None:
    name = domain.strip().strip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return None
    return labels


def organizational_domain(domain: str) -> str | None:
    """The registrable domain of ``domain`` (``mail.shop.example.co.uk`` -> ``example.co.uk``);
    None for something that is no domain name or is a public suffix itself."""
    labels = _labels(domain)
    if labels is None:
        return None
    last_two = ".".join(labels[-2:])
    suffix_labels = 1
    if last_two in _TWO_LABEL_SUFFIXES or (len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL):
        suffix_labels = 2
    if len(labels) <= suffix_labels:
        return None
    return ".".join(labels[-(suffix_labels + 1) :])


def aligned(domain: str | None, from_domain: str | None) -> bool:
    """Relaxed alignment: both have the same organizational domain."""
    if not domain or not from_domain:
        return False
    ours = organizational_domain(from_domain)
    return ours is not None and organizational_domain(domain) == ours


def domain_of(address: str | None) -> str | None:
    """The domain of an address (``<kim@Example.com>`` -> ``example.com``); None without one."""
    if not address:
        return None
    _, at, domain = address.strip().strip("<>").rpartition("@")
    return domain.strip().lower() or None if at else None


def dkim_signing_domain(signature: str) -> str | None:
    """The ``d=`` tag of one ``DKIM-Signature`` header value (tags are ``name=value;``, RFC 6376)."""
    for tag in signature.split(";"):
        name, sep, value = tag.partition("=")
        if sep and re.sub(r"\s+", "", name).lower() == "d":
            domain = re.sub(r"\s+", "", value).lower().strip(".")
            return domain or None
    return None


@dataclass(frozen=True)
class SenderAuthentication:
    """Whether the From address is proven, and by which test (for the logs and the message)."""

    verified: bool
    #: ``dmarc``, ``dkim`` or ``spf`` when verified; None when the address is only claimed.
    method: Method | None
    #: A short reason, e.g. ``dmarc=GRAY, dkim aligned (example.com)`` or ``dmarc=FAIL``.
    reason: str


def authenticate_sender(
    from_address: str,
    *,
    dmarc: str,
    dkim: str,
    spf: str,
    dkim_domains: Sequence[str] = (),
    envelope_senders: Iterable[str | None] = (),
) -> SenderAuthentication:
    """Apply the rules of this module to one message's verdicts and alignment evidence.

    ``envelope_senders``: the envelope MAIL FROM (SES's ``mail.source``), then the
    ``Return-Path`` header as a fallback; the first one present counts.
    """
    if dmarc == "PASS":
        return SenderAuthentication(True, "dmarc", "dmarc=PASS")
    if dmarc != "GRAY":
        return SenderAuthentication(False, None, f"dmarc={dmarc}")
    from_domain = domain_of(from_address)
    signers = [d for d in dict.fromkeys(dkim_domains) if d]
    if dkim == "PASS" and signers and all(aligned(d, from_domain) for d in signers):
        return SenderAuthentication(True, "dkim", f"dmarc=GRAY, dkim aligned ({', '.join(signers)})")
    envelope = next((domain_of(s) for s in envelope_senders if domain_of(s)), None)
    if spf == "PASS" and aligned(envelope, from_domain):
        return SenderAuthentication(True, "spf", f"dmarc=GRAY, spf aligned ({envelope})")
    return SenderAuthentication(False, None, "dmarc=GRAY, no aligned dkim or spf pass")
