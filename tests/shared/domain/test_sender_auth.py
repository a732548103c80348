"""Sender authentication: DMARC, or (no DMARC policy) an aligned DKIM or SPF pass."""

from __future__ import annotations

import pytest

from shared.domain.sender_auth import (
    aligned,
    authenticate_sender,
    dkim_signing_domain,
    domain_of,
    organizational_domain,
)

KIM = "Kim@SmallCo.example"


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("example.com", "example.com"),
        ("mail.eu.example.com", "example.com"),
        ("Example.COM.", "example.com"),
        ("shop.example.co.uk", "example.co.uk"),
        ("example.co.uk", "example.co.uk"),
        ("mail.firma.com.br", "firma.com.br"),
        ("a.b.example.com.au", "example.com.au"),
        ("news.example.de", "example.de"),
        ("co.uk", None),
        ("com", None),
        ("not a domain", None),
        ("", None),
    ],
)
def test_organizational_domain(domain: str, expected: str | None) -> None:
    assert organizational_domain(domain) == expected


def test_relaxed_alignment_is_the_same_organizational_domain() -> None:
    assert aligned("mail.smallco.example", "smallco.example")
    assert aligned("smallco.example", "support.smallco.example")
    assert not aligned("smallco.example.net", "smallco.example")
    assert not aligned("other.co.uk", "smallco.co.uk")  # two registrants under one registry suffix
    assert not aligned(None, "smallco.example")
    assert not aligned("co.uk", "co.uk")


def test_dkim_signing_domain_reads_the_d_tag_of_a_folded_header() -> None:
    value = (
        "v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=Mail.SmallCo.example;\r\n"
        " h=from:to:subject; s=s1; bh=2jUSOH9N=; b=Jx3sF0dV8l2n"
    )
    assert dkim_signing_domain(value) == "mail.smallco.example"
    assert dkim_signing_domain("v=1; s=s1; b=abc") is None
    # Only the tag named d: a "d=" inside another tag's value is no signing domain.
    assert dkim_signing_domain("v=1; h=from:d=x; d = esp.example ;") == "esp.example"


def test_domain_of() -> None:
    assert domain_of("<bounces+kim=smallco.example@em1234.SmallCo.example>") == "em1234.smallco.example"
    assert domain_of("no-at-sign") is None
    assert domain_of(None) is None


def auth(**kwargs: object) -> tuple[bool, str | None]:
    verdicts = {"dmarc": "GRAY", "dkim": "PASS", "spf": "PASS", **kwargs}
    result = authenticate_sender(KIM, **verdicts)  # type: ignore[arg-type]
    return result.verified, result.method


def test_dmarc_pass_verifies_whatever_else() -> None:
    assert auth(dmarc="PASS", dkim="FAIL", spf="FAIL") == (True, "dmarc")


@pytest.mark.parametrize("dmarc", ["FAIL", "PROCESSING_FAILED", "DISABLED", "MISSING"])
def test_anything_but_pass_or_gray_stays_claimed(dmarc: str) -> None:
    # An aligned DKIM pass does not rescue a DMARC FAIL: the domain's own policy said no.
    assert auth(dmarc=dmarc, dkim_domains=["smallco.example"], envelope_senders=["kim@smallco.example"]) == (
        False,
        None,
    )


def test_gray_with_an_aligned_dkim_pass_verifies() -> None:
    assert auth(dkim_domains=["mail.smallco.example"], spf="FAIL") == (True, "dkim")


def test_gray_with_a_dkim_pass_of_another_domain_stays_claimed() -> None:
    assert auth(dkim_domains=["esp.example"], spf="FAIL") == (False, None)


def test_gray_with_several_signatures_needs_every_one_aligned() -> None:
    # SES reports one DKIM verdict: with a foreign signature next to ours we cannot tell which passed.
    assert auth(dkim_domains=["esp.example", "smallco.example"], spf="FAIL") == (False, None)
    assert auth(dkim_domains=["smallco.example", "mail.smallco.example"], spf="FAIL") == (True, "dkim")


def test_gray_with_a_failing_dkim_signature_of_the_from_domain_stays_claimed() -> None:
    assert auth(dkim="FAIL", dkim_domains=["smallco.example"], spf="FAIL") == (False, None)


def test_gray_with_an_aligned_spf_pass_verifies() -> None:
    result = authenticate_sender(
        KIM,
        dmarc="GRAY",
        dkim="GRAY",
        spf="PASS",
        envelope_senders=[None, "<bounces+kim=smallco.example@em1234.smallco.example>"],
    )
    assert (result.verified, result.method) == (True, "spf")
    assert "em1234.smallco.example" in result.reason


def test_gray_with_spf_pass_for_an_unaligned_envelope_stays_claimed() -> None:
    assert auth(dkim="GRAY", envelope_senders=["0100019a@amazonses.com"]) == (False, None)
    assert auth(dkim="GRAY", spf="FAIL", envelope_senders=["kim@smallco.example"]) == (False, None)
