"""The Meta webhooks put what their time budget leaves straight onto the profile-merge queue
(shared/channels/meta_webhook.py): that is only right while profile merge is the one target of
``message.received`` and the webhooks may send to its queue."""

from __future__ import annotations

from topology import MESSAGE_RECEIVED, RULES, TOPOLOGY


def test_profile_merge_is_the_one_target_of_message_received() -> None:
    targets = {rule.target_queue for rule in RULES if MESSAGE_RECEIVED in rule.detail_types}
    assert targets == {"profile-merge"}


def test_the_meta_webhooks_may_send_to_the_profile_merge_queue() -> None:
    for name in ("whatsapp", "messenger"):
        grants = {(g.kind, g.resource, g.access) for g in TOPOLOGY.function(name).grants}
        assert ("queue", "profile-merge", "send") in grants
