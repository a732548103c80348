"""WhatsApp business-scoped ids, rich content, reactions and system messages (Cloud API formats)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.channels import meta
from shared.contracts.events import AdReferral, ContactCard, Identity, Media, Order
from shared.domain.identity import normalise_value
from tests.helpers import FIXTURES as SHARED_FIXTURES

FIXTURES = SHARED_FIXTURES / "meta"
NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def parse(name: str) -> meta.Notification:
    return meta.parse_whatsapp((FIXTURES / name).read_bytes(), NOW)


def test_business_scoped_user_id_is_an_identity_linked_to_the_phone() -> None:
    both, only = parse("whatsapp_bsuid.json").messages
    assert both.sender == Identity(type="whatsapp", value="+5511987650001", verified=True)
    assert Identity(type="whatsapp_user", value="BR.1184029375510293847", verified=True) in both.identities
    assert Identity(type="phone", value="+5511987650001", verified=True) in both.identities
    assert both.display_name == "Carla Souza"
    # A customer known only by the business-scoped id (a username user): recorded under it.
    assert only.sender == Identity(type="whatsapp_user", value="DE.9920418836475510023", verified=True)
    assert only.identities == ()
    assert only.display_name == "dora.k"
    assert only.text == "Hallo, wo ist meine Bestellung?"


def test_business_scoped_user_id_normalises_as_an_opaque_id() -> None:
    assert normalise_value("whatsapp_user", " US.13491208655302741918 ") == "US.13491208655302741918"


def test_contact_card_is_kept_and_readable() -> None:
    card_message = parse("whatsapp_rich.json").messages[0]
    [attachment] = card_message.attachments
    assert attachment.content == ContactCard(
        name="Bruno Keller",
        phones=("+49 30 1234567", "+49 151 7654321"),
        emails=("bruno.keller@example.com",),
        organization="Keller Logistik GmbH",
    )
    assert card_message.text == (
        "[contact] Bruno Keller, +49 30 1234567, +49 151 7654321, bruno.keller@example.com"
    )


def test_sticker_order_referral_and_reaction() -> None:
    _, sticker, order, referred, reaction = parse("whatsapp_rich.json").messages
    assert sticker.attachments[0].content == Media(
        media_type="sticker", media_id="1228510038812265", mime_type="image/webp"
    )
    assert isinstance(order.attachments[0].content, Order)
    assert order.text == "[order] 2 x SKU-CHAIR-01 - Bitte schnell liefern"
    assert order.attachments[0].content.items[0].price == 49.9
    assert referred.text == "Is this still available?"
    assert referred.attachments[0].content == AdReferral(
        source_type="ad",
        source_id="120210445563320118",
        source_url="https://fb.me/3kQh5x2Ab",
        headline="Winter sale",
        body="Chairs -30%",
    )
    assert reaction.kind == "reaction"
    assert reaction.metadata["reaction_to"] == "wamid.HBgNORDER0001"
    assert reaction.metadata["reaction"] == "\U0001f44d"


def test_system_messages_are_events_that_link_a_changed_number() -> None:
    number, identity = parse("whatsapp_system.json").messages
    assert (number.kind, identity.kind) == ("system", "system")
    assert number.sender.value == "+4915112345678"
    # The new number joins the same customer (verified: Meta vouches for it).
    assert Identity(type="whatsapp", value="+4915187654321", verified=True) in number.identities
    assert Identity(type="phone", value="+4915187654321", verified=True) in number.identities
    assert number.metadata["system_type"] == "user_changed_number"
    assert identity.metadata["identity_hash"] == "a1b2c3d4e5f6"
    assert identity.metadata["system_type"] == "customer_identity_changed"
