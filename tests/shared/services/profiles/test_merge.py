"""Merges, unmerges, idempotency, erasure and export against moto (repositories and domain)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from shared.contracts.events import format_timestamp, utc_now
from shared.services.profiles.erasure import erase_customer, export_customer
from shared.services.profiles.merge import unmerge_customers
from tests.shared.services.profiles.support import START, Repos, claimed, inbound, snapshot, verified

PHONE = "+4915112345678"


def _set(repos: Repos, customer_id: str, **values: Any) -> None:
    state = repos.customers.load(customer_id)
    assert state is not None
    attributes = dict(state.profile.get("attributes") or {})
    attributes.update(values.pop("attributes", {}))
    assert repos.customers.update_profile(customer_id, state.version, {"attributes": attributes, **values})


def test_merge_newer_attribute_wins_consent_stays_restrictive_one_thread_audited_and_unmerge_gives_back(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    web = repos.record(inbound("a1", verified("webchat", "wcs_ana"), verified("account", "acct-ana")))
    sms = repos.record(inbound("b1", verified("phone", PHONE), channel="sms", seconds=5))
    ana, bob = web.customer_id, sms.customer_id
    assert ana
    assert bob
    assert ana != bob
    t = format_timestamp(START)
    later = format_timestamp(START + timedelta(hours=1))
    _set(
        repos,
        ana,
        attributes={"language": {"value": "de", "at": t, "source": "agent:x"}},
        consent_sms={"status": "opted_in", "at": later, "source": "agent:x"},
        tags=["vip"],
    )
    _set(
        repos,
        bob,
        attributes={"language": {"value": "en", "at": later, "source": "sms"}},
        consent_sms={"status": "opted_out", "at": t, "source": "sms:STOP"},
        tags=["late-payer"],
    )

    # The signed web chat session now also proves the phone number: one person.
    linking = repos.record(
        inbound("a2", verified("webchat", "wcs_ana"), verified("phone", PHONE), seconds=10)
    )
    assert linking.customer_id == ana  # the older profile survives
    [merge_id] = linking.merges
    survivor = repos.customers.get(ana)
    assert survivor is not None
    assert survivor.attributes["language"].value == "en"
    assert survivor.attributes["language"].source == "sms"  # the newer value, with its source
    assert survivor.consent["sms"].status == "opted_out"  # the most restrictive choice
    assert survivor.tags == ["vip", "late-payer"]
    assert {i.value for i in survivor.identities} == {"wcs_ana", "acct-ana", PHONE}
    assert repos.customers.owner_of(verified("phone", PHONE)) == ana
    assert [(m.merge_id, m.role, m.other_customer_id) for m in survivor.merges] == [
        (merge_id, "survivor", bob)
    ]

    # Two open conversations became one thread; Bob's is listed under Ana, marked merged.
    thread = repos.conversations.get(web.conversation_id or "")
    assert thread is not None
    assert [m.message_id for m in thread.messages] == ["webchat#a1", "sms#b1", "webchat#a2"]
    assert thread.message_count == 3
    assert set(thread.channels) == {"webchat", "sms"}
    listed = {c.conversation_id: c.status for c in repos.conversations.list_for_customer(ana)}
    assert listed[sms.conversation_id or ""] == "merged"
    # A later SMS from Bob's number lands in the one thread.
    again = repos.record(inbound("b2", verified("phone", PHONE), channel="sms", seconds=20))
    assert (again.customer_id, again.conversation_id) == (ana, web.conversation_id)

    record = repos.customers.get_merge(merge_id)
    assert record is not None
    assert (record["survivor_id"], record["merged_id"], record["cause"]) == (ana, bob, "webchat#a2")
    assert record["identities"] == [f"phone:{PHONE}"]
    assert {"field": "attributes.language"}.items() <= next(
        c for c in record["changes"] if c["field"] == "attributes.language"
    ).items()
    assert record["thread"] == {"source": sms.conversation_id, "target": web.conversation_id}

    # Unmerge: identities, conversations and attribute values go back.
    now = format_timestamp(utc_now())
    undone = unmerge_customers(repos.customers, repos.merger, ana, merge_id, "agent:x", now)
    assert undone["status"] == "unmerged"
    assert repos.customers.owner_of(verified("phone", PHONE)) == bob
    restored_ana, restored_bob = repos.customers.get(ana), repos.customers.get(bob)
    assert restored_ana is not None
    assert restored_bob is not None
    assert {i.value for i in restored_ana.identities} == {"wcs_ana", "acct-ana"}
    assert {i.value for i in restored_bob.identities} == {PHONE}
    assert restored_ana.attributes["language"].value == "de"
    assert restored_ana.consent["sms"].status == "opted_in"
    assert restored_ana.tags == ["vip"]
    assert restored_bob.status == "active"
    assert restored_bob.open_conversation_id == sms.conversation_id
    own = repos.conversations.get(sms.conversation_id or "")
    assert own is not None
    assert own.status == "open"
    assert own.customer_id == bob
    assert [m.message_id for m in own.messages] == ["sms#b1"]
    thread = repos.conversations.get(web.conversation_id or "")
    assert thread is not None
    # What arrived after the merge stays where it was written.
    assert [m.message_id for m in thread.messages] == ["webchat#a1", "webchat#a2", "sms#b2"]
    assert thread.message_count == 3
    assert [m.status for m in restored_ana.merges] == ["unmerged"]


def test_the_same_events_processed_twice_change_nothing_the_second_time(stack: dict[Any, str]) -> None:
    repos = Repos()
    events = [
        inbound(
            "i1", verified("webchat", "wcs_i1"), verified("email", "idem@example.com"), display_name="Ida"
        ),
        inbound("i2", verified("phone", "+4915100000001"), channel="sms", seconds=1),
        inbound("i3", verified("webchat", "wcs_i1"), verified("phone", "+4915100000001"), seconds=2),
        inbound("i4", verified("phone", "+4915100000001"), claimed("email", "other@example.com"), seconds=3),
    ]
    for event in events:
        repos.record(event)
    before = snapshot(stack)
    for event in events:
        again = repos.record(event)
        assert again.new_message is False
        assert again.merges == []
    assert snapshot(stack) == before


def test_whatsapp_and_sms_from_one_brazilian_mobile_with_and_without_ninth_digit_are_one_customer(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    sms = repos.record(inbound("br1", verified("phone", "+55 11 98765-4321"), channel="sms"))
    # An older WhatsApp account reports its wa_id without the ninth digit, and no phone identity.
    wa = repos.record(inbound("br2", verified("whatsapp", "551187654321"), channel="whatsapp", seconds=1))
    assert wa.customer_id == sms.customer_id
    assert wa.conversation_id == sms.conversation_id
    customer = repos.customers.get(sms.customer_id or "")
    assert customer is not None
    assert {(i.type, i.value) for i in customer.identities} == {
        ("phone", "+5511987654321"),
        ("whatsapp", "+5511987654321"),
    }


def test_erasure_removes_the_person_and_a_replayed_old_event_does_not_bring_them_back(
    stack: dict[Any, str],
) -> None:
    repos = Repos()
    first = inbound("e1", verified("phone", "+4915199999999"), channel="sms", text="my secret")
    second = inbound("e2", verified("webchat", "wcs_erase"), verified("email", "gone@example.com"), seconds=1)
    linking = inbound("e3", verified("webchat", "wcs_erase"), verified("phone", "+4915199999999"), seconds=2)
    recorded = [repos.record(m) for m in (first, second, linking)]
    customer_id = recorded[2].customer_id  # the survivor
    assert customer_id is not None
    assert recorded[2].merges
    now = utc_now()
    result = erase_customer(
        repos.customers, repos.merger, customer_id, format_timestamp(now), int(now.timestamp())
    )
    assert result.identities == 3
    assert result.conversations == 2
    assert len(result.profiles) == 2  # the survivor and the profile merged into it
    text = repr(snapshot(stack))
    for personal in ("+4915199999999", "gone@example.com", "wcs_erase", "my secret", "text of e2"):
        assert personal not in text
    # A replay of any old event (bus archive, provider retry) is dropped.
    for old in (first, second, linking):
        replay = repos.record(old)
        assert (replay.customer_id, replay.dropped) == (None, "erased")
    assert repos.customers.owner_of(verified("phone", "+4915199999999")) is None
    # Erasing twice is fine; a message written after the erasure is a new contact.
    again = erase_customer(repos.customers, repos.merger, customer_id, format_timestamp(now), 0)
    assert again.already
    fresh = repos.record(
        inbound("e4", verified("phone", "+4915199999999"), channel="sms", sent_at=now + timedelta(seconds=5))
    )
    assert fresh.new_customer
    assert fresh.customer_id != customer_id


def test_export_has_everything_stored_about_the_person(stack: dict[Any, str]) -> None:
    repos = Repos()
    repos.record(inbound("x1", verified("phone", "+4915188888888"), channel="sms", text="hello"))
    linked = repos.record(
        inbound("x2", verified("webchat", "wcs_x"), verified("phone", "+4915188888888"), seconds=1)
    )
    assert linked.customer_id is not None
    data = export_customer(repos.customers, repos.merger, linked.customer_id, format_timestamp(utc_now()))
    assert data["customer"]["customer_id"] == linked.customer_id
    assert {i["value"] for i in data["identities"]} == {"+4915188888888", "wcs_x"}
    texts = [m["text"] for c in data["conversations"] for m in c["messages"]]
    assert "hello" in texts
    assert "text of x2" in texts
