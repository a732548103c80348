"""Notify: deliver a requested notification once, on the right channel, and log it.

The flow for one ``notification.requested``:

1. The outbox item keyed by ``notification_id`` is written first (conditionally): a
   request delivered twice by SQS, or published twice by its sender, is handled once;
   a finished one is not touched again.
2. Quiet hours: a notification that is not a reply and not urgent, arriving inside the
   customer's quiet hours, is *deferred* (the caller re-queues it with a delay).
3. Channel choice, consent, template rendering and the 24-hour windows
   (:mod:`shared.outbound.policy`, :mod:`shared.outbound.templates`) give the channels to
   try, in order. Each is tried through its provider adapter; a permanent failure falls
   back to the next channel.
4. Each channel attempt is recorded *before* the provider is called (conditional write:
   ``attempting``) and *after* (``accepted``/``failed``). A retry that finds an attempt:
   accepted -> not sent again; failed -> next channel; still ``attempting`` (the previous
   run stopped between calling the provider and recording its answer) -> see
   :meth:`Notifier._reconcile`: our own stores and the local outbox are idempotent and
   simply resend; Twilio is asked whether the message exists; Meta and SES cannot be
   asked and have no idempotency key, so the attempt is marked ``unconfirmed`` and
   **not** resent (at most once: a customer never gets the same message twice).
5. The message goes into the conversation timeline (once, keyed by the notification id)
   with its status, and the outbox item gets its final status, channel and provider id
   (delivery receipts move it on: :meth:`OutboxRepository.update_status`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from aws_lambda_powertools import Logger

from functions.notify.facts import (
    answered_conversation,
    conversation_facts,
    customer_facts,
    parse_time,
    with_last_seen,
)
from shared.contracts.events import NotificationRequested, format_timestamp
from shared.outbound.adapters import (
    Accepted,
    Adapter,
    DeliveryFailed,
    OutboundMessage,
    OutcomeUnknown,
    ProviderBusy,
    ProviderRequest,
)
from shared.outbound.policy import (
    CHANNEL_OF_IDENTITY,
    Candidate,
    ChannelPlan,
    ConversationFacts,
    CustomerFacts,
    choose_channels,
    defers_for_quiet_hours,
    is_reply,
    next_allowed_time,
    window_open,
)
from shared.outbound.templates import Rendered, TemplateError, TemplateStore, WhatsAppTemplate
from shared.platform import link_settings
from shared.repositories.conversations import ConversationNotFound, ConversationRepository
from shared.repositories.customers import CustomerRepository
from shared.repositories.outbox import ATTEMPTING, OutboxRepository

__all__ = [
    "CHANNEL_OF_IDENTITY",
    "DeliveryFailed",
    "Notifier",
    "Outcome",
]

_log = Logger(child=True)

#: How long an ``attempting`` record belongs to the invocation that wrote it (> the
#: longest provider call with its retries; < the notify queue's visibility timeout).
ATTEMPT_LEASE = timedelta(seconds=120)
FINAL_STATUSES = frozenset({"sent", "delivered", "read", "failed"})


#: A channel the message went out on: the candidate, the message, the provider's acceptance.
Delivered = tuple[Candidate, OutboundMessage, Accepted]
#: An attempt accepted in this run: channel, provider message id, details.
Fresh = tuple[str, str | None, dict[str, str] | None]

#: Mints the one-click unsubscribe URL of a customer's e-mail notification (None: no URL).
UnsubscribeLinkMinter = Callable[[str, datetime], str | None]
#: Mints the URL of a customer's contact preferences page: (customer, channel, now) (None: no URL).
PreferenceLinkMinter = Callable[[str, str, datetime], str | None]
#: Channels whose notifications carry the preferences link (e-mail in its footer, web chat as a line).
PREFERENCE_LINK_CHANNELS = ("email", "webchat")


class UnsubscribeLinks:
    """Signed one-click unsubscribe links (``shared.domain.links``) for e-mail notifications.

    ``<OMNI_PUBLIC_API_URL>/links/unsubscribe?t=<token>``: the token names the customer and
    the ``email`` channel. Without a public API URL (a deployment that has none) there is
    no https link and the e-mail keeps only its mailto unsubscribe; that is logged once.
    """

    def __init__(
        self,
        base_url: Callable[[], str | None] | None = None,
        secret: Callable[[], str] | None = None,
    ) -> None:
        from shared.domain import links  # noqa: PLC0415 - only notify mints links

        self._links = links
        self._base_url = base_url or link_settings.public_base_url
        self._secret = secret or link_settings.links_signing_secret
        self._warned = False

    def __call__(self, customer_id: str, now: datetime) -> str | None:
        base = self._base_url()
        if base is None:
            if not self._warned:
                self._warned = True
                _log.warning(
                    f"{self._links.BASE_URL_ENV_VAR} is not set: e-mail notifications carry only "
                    "the mailto unsubscribe"
                )
            return None
        token = self._links.sign(
            self._secret(), "unsubscribe", customer_id=customer_id, channel="email", now=now.timestamp()
        )
        return self._links.link_url(base, "unsubscribe", token)

    def preferences(self, customer_id: str, channel: str, now: datetime) -> str | None:
        """``<OMNI_PUBLIC_API_URL>/links/preferences?t=<token>``: the customer's contact choices page."""
        base = self._base_url()
        if base is None:
            return None
        token = self._links.sign(
            self._secret(), "preferences", customer_id=customer_id, channel=channel, now=now.timestamp()
        )
        return self._links.link_url(base, "preferences", token)


class AttemptInFlight(Exception):
    """Another invocation is sending this notification on this channel right now; retry later."""


@dataclass(frozen=True)
class Outcome:
    notification_id: str
    status: Literal["sent", "failed", "already_done", "deferred"]
    channel: str | None = None
    error: str | None = None
    #: For ``deferred``: when the notification may go out (UTC).
    until: datetime | None = None
    #: Channels the message went out on (several when the customer asked for all).
    channels: tuple[str, ...] = ()
    #: ``(channel, reason)`` for every channel ruled out or failed.
    skipped: tuple[tuple[str, str], ...] = field(default_factory=tuple)


# --------------------------------------------------------------------------- #
# Content per channel
# --------------------------------------------------------------------------- #
def compose(
    request: NotificationRequested,
    candidate: Candidate,
    rendered: Rendered | None,
    conversation: ConversationFacts | None,
    now: datetime,
) -> OutboundMessage:
    """The message for one channel; raises :class:`DeliveryFailed` when it cannot go there."""
    text = rendered.text if rendered else request.text
    subject = (rendered.subject if rendered else None) or request.subject
    whatsapp_template = _outside_window(candidate.channel, rendered, conversation, now)
    if not text.strip() and whatsapp_template is None:
        raise DeliveryFailed("empty_message", "the request has neither text nor a template")
    in_reply_to = None
    if candidate.channel == "email" and is_reply(request):
        in_reply_to = request.in_reply_to or (conversation.last_email_message_id if conversation else None)
    return OutboundMessage(
        notification_id=request.notification_id,
        channel=candidate.channel,
        to=candidate.to,
        text=text,
        customer_id=request.customer_id,
        kind=request.kind,
        conversation_id=request.conversation_id,
        subject=subject,
        whatsapp_template=whatsapp_template,
        in_reply_to=in_reply_to,
        unsubscribe=not is_reply(request),
        author=request.author,
        author_name=request.author_name,
        sources=tuple(c.model_dump() for c in request.citations),
        survey=request.survey,
    )


def _outside_window(
    channel: str, rendered: Rendered | None, conversation: ConversationFacts | None, now: datetime
) -> WhatsAppTemplate | None:
    """The approved WhatsApp template to use outside the 24-hour window (None: free text may go).

    Raises :class:`DeliveryFailed` when the channel's window is closed and nothing else may go."""
    if channel not in ("whatsapp", "messenger", "instagram") or window_open(channel, conversation, now):
        return None
    if channel == "whatsapp" and rendered is not None and rendered.whatsapp is not None:
        return rendered.whatsapp
    if channel == "whatsapp":
        raise DeliveryFailed(
            "outside_whatsapp_window",
            "free text goes out on WhatsApp only within 24 h of the customer's last WhatsApp "
            "message; this request has no approved WhatsApp template",
        )
    raise DeliveryFailed(
        f"outside_{channel}_window",
        f"{channel} allows messages only within 24 h of the customer's last message",
    )


# --------------------------------------------------------------------------- #
# The notifier
# --------------------------------------------------------------------------- #
class Notifier:
    def __init__(
        self,
        outbox: OutboxRepository,
        conversations: ConversationRepository,
        customers: CustomerRepository,
        adapters: Mapping[str, Adapter],
        templates: TemplateStore | None = None,
        lease: timedelta = ATTEMPT_LEASE,
        unsubscribe_links: UnsubscribeLinkMinter | None = None,
        preference_links: PreferenceLinkMinter | None = None,
    ) -> None:
        self.outbox = outbox
        self.conversations = conversations
        self.customers = customers
        self.adapters = adapters
        self.templates = templates or TemplateStore()
        self.lease = lease
        #: One-click unsubscribe links for e-mail notifications; None: the mailto only.
        self.unsubscribe_links = unsubscribe_links
        #: Signed links to the customer's contact preferences page (e-mail and web chat notifications).
        self.preference_links = preference_links

    def handle(self, request: NotificationRequested, now: datetime) -> Outcome:
        at = format_timestamp(now)
        item = self._start(request, at)
        if item.get("status") in FINAL_STATUSES:
            return Outcome(request.notification_id, "already_done", item.get("channel"))
        started = bool(item.get("attempts"))

        customer = customer_facts(request.customer_id, self.customers)
        if customer is None:
            if request.to is None:
                return self._fail(
                    request, item, "unknown_customer", f"no customer {request.customer_id}", now
                )
            customer = CustomerFacts(request.customer_id, identities=(request.to,))
        conversation = with_last_seen(self._conversation(request, customer), customer)

        if not started and defers_for_quiet_hours(request):
            until = next_allowed_time(now, customer.zone(), customer.quiet_hours)
            if until is not None:
                self.outbox.defer(request.notification_id, format_timestamp(until), at)
                return Outcome(request.notification_id, "deferred", until=until)

        try:
            rendered = self._render(request, customer)
        except TemplateError as exc:
            return self._fail(request, item, exc.code, str(exc), now)

        plan = choose_channels(request, customer, conversation)
        skipped = list(plan.skipped)
        if not plan.candidates:
            return self._fail(request, item, "no_channel", plan.reason(), now, skipped)
        accepted, fresh = self._deliver(request, item, plan, rendered, conversation, now, skipped)
        if not accepted:
            return self._fail(request, item, "all_channels_failed", _describe(skipped), now, skipped)
        return self._succeed(request, item, accepted, rendered, skipped, now, fresh)

    def _start(self, request: NotificationRequested, at: str) -> dict[str, Any]:
        """The outbox item of the request (written now when it is new)."""
        item, _ = self.outbox.start(
            {
                "notification_id": request.notification_id,
                "customer_id": request.customer_id,
                "conversation_id": request.conversation_id,
                "kind": request.kind,
                "urgency": request.urgency,
                "urgent": request.urgent,
                "template": request.template,
                "channel": request.channel,
                "recipient": request.to.key if request.to else None,
                "text": request.text,
                "author": request.author,
                "created_at": at,
            }
        )
        return item

    def _render(self, request: NotificationRequested, customer: CustomerFacts) -> Rendered | None:
        """The request's template in the customer's language (None: free text); raises TemplateError."""
        if not request.template:
            return None
        template = self.templates.get(request.template)
        return template.render(request.variables, request.language or customer.language)

    def _deliver(
        self,
        request: NotificationRequested,
        item: dict[str, Any],
        plan: ChannelPlan,
        rendered: Rendered | None,
        conversation: ConversationFacts | None,
        now: datetime,
        skipped: list[tuple[str, str]],
    ) -> tuple[list[Delivered], list[Fresh]]:
        """Try the plan's channels in order (all of them on fan-out); failures go to ``skipped``.

        Returns what was accepted and the attempts this run got accepted, still to be settled
        (with the status, in one write)."""
        accepted: list[Delivered] = []
        fresh: list[Fresh] = []
        for candidate in plan.candidates:
            adapter = self.adapters.get(candidate.channel)
            try:
                if adapter is None:
                    raise DeliveryFailed("channel_unavailable", f"no adapter for {candidate.channel}")
                message = compose(request, candidate, rendered, conversation, now)
                message = _stamp(message, item["created_at"], now)
                message = self._with_unsubscribe_link(message, now)
                result, new = self._attempt(adapter, message, now)
            except DeliveryFailed as failure:
                skipped.append((candidate.channel, f"{failure.code}: {failure.reason}"))
                continue
            accepted.append((candidate, message, result))
            if new:
                fresh.append(
                    (candidate.channel, result.provider_message_id or None, dict(result.details) or None)
                )
            if not plan.fan_out:
                break
        return accepted, fresh

    # -- one channel ------------------------------------------------------ #
    def _with_unsubscribe_link(self, message: OutboundMessage, now: datetime) -> OutboundMessage:
        message = self._with_preferences_link(message, now)
        if message.channel != "email" or not message.unsubscribe or self.unsubscribe_links is None:
            return message
        return replace(message, unsubscribe_url=self.unsubscribe_links(message.customer_id, now))

    def _with_preferences_link(self, message: OutboundMessage, now: datetime) -> OutboundMessage:
        """Notifications (not replies) on e-mail and web chat name the customer's preferences page."""
        if message.channel not in PREFERENCE_LINK_CHANNELS or not message.unsubscribe:
            return message
        url = (
            self.preference_links(message.customer_id, message.channel, now)
            if self.preference_links
            else None
        )
        if url is None:
            return message
        if message.channel == "email":
            return replace(message, preferences_url=url)
        return replace(message, text=f"{message.text.rstrip()}\n\nChoose how and when we contact you: {url}")

    def _attempt(self, adapter: Adapter, message: OutboundMessage, now: datetime) -> tuple[Accepted, bool]:
        """Send on one channel; the provider's acceptance and whether it still has to be recorded
        (False: an earlier run's attempt, already settled)."""
        request = adapter.build(message)
        at = format_timestamp(now)
        attempt, new = self.outbox.begin_attempt(
            message.notification_id,
            message.channel,
            {
                "key": message.idempotency_key,
                "provider": adapter.provider,
                "to": message.to.key,
                "started_at": at,
                "request": request.record(),
            },
        )
        started_at = attempt["started_at"]
        if not new:
            settled = self._reconcile(adapter, request, message, attempt, now)
            if settled is not None:
                return settled, False
            started_at = at
        try:
            result = adapter.send(request, message)
        except DeliveryFailed as failure:
            self.outbox.settle_attempt(
                message.notification_id,
                message.channel,
                "failed",
                at,
                error=f"{failure.code}: {failure.reason}",
            )
            raise
        except ProviderBusy:
            # Not accepted: forget the attempt so the redelivered request starts afresh.
            self.outbox.release_attempt(message.notification_id, message.channel, started_at)
            raise
        except OutcomeUnknown:
            raise  # the attempt stays open; the retry reconciles it after the lease
        # Accepted: recorded together with the status by _succeed (one write). A crash before
        # that leaves the attempt open, exactly as a crash right after the provider call did.
        return result, True

    def _reconcile(
        self,
        adapter: Adapter,
        request: ProviderRequest,
        message: OutboundMessage,
        attempt: dict[str, Any],
        now: datetime,
    ) -> Accepted | None:
        """Settle an attempt found from an earlier run; None means: send (again) now."""
        state = attempt.get("state")
        if state in ("accepted", "unconfirmed"):
            return Accepted(str(attempt.get("provider_message_id") or ""), attempt.get("details") or {})
        if state == "failed":
            code, _, reason = str(attempt.get("error") or "failed: unknown").partition(": ")
            raise DeliveryFailed(code, reason)
        if state != ATTEMPTING:
            raise RuntimeError(f"attempt {message.idempotency_key} is in unknown state {state!r}")
        if adapter.idempotent:
            return None  # sending the same key again has one effect
        started = parse_time(str(attempt.get("started_at"))) or now
        if now - started < self.lease:
            raise AttemptInFlight(
                f"{message.idempotency_key} is being sent since {attempt.get('started_at')}"
            )
        at = format_timestamp(now)
        stored = attempt.get("request") or {}
        previous = ProviderRequest(
            provider=str(stored.get("provider", adapter.provider)),
            method=str(stored.get("method", request.method)),
            url=str(stored.get("url", request.url)),
            encoding=stored.get("encoding", request.encoding),
            body=stored.get("body") or request.body,
        )
        try:
            found = adapter.find_sent(previous, message, started)
        except NotImplementedError:
            # The provider can be neither asked nor given an idempotency key: the message
            # may have gone out. At most once: record it as unconfirmed, do not resend.
            self.outbox.settle_attempt(
                message.notification_id,
                message.channel,
                "unconfirmed",
                at,
                error="unconfirmed: an earlier run stopped after calling the provider; not resent",
            )
            return Accepted("", {"unconfirmed": "true"})
        if found:
            self.outbox.settle_attempt(
                message.notification_id, message.channel, "accepted", at, provider_message_id=found
            )
            return Accepted(found)
        if not self.outbox.renew_attempt(
            message.notification_id, message.channel, str(attempt["started_at"]), at
        ):
            raise AttemptInFlight(f"{message.idempotency_key} was taken over by another run")
        return None

    # -- endings -------------------------------------------------------------- #
    def _conversation(
        self, request: NotificationRequested, customer: CustomerFacts
    ) -> ConversationFacts | None:
        conversation_id = request.conversation_id
        if conversation_id is not None and request.answering is not None and is_reply(request):
            return answered_conversation(conversation_id, request.answering, request.to)
        if conversation_id is None:
            # A notification outside any conversation: the customer's open one still tells
            # when they last wrote on WhatsApp (the 24-hour window).
            profile = self.customers.get_profile(customer.customer_id) or {}
            conversation_id = profile.get("open_conversation_id")
        if not conversation_id:
            return None
        return conversation_facts(conversation_id, self.conversations)

    def _succeed(
        self,
        request: NotificationRequested,
        item: dict[str, Any],
        accepted: list[Delivered],
        rendered: Rendered | None,
        skipped: list[tuple[str, str]],
        now: datetime,
        fresh: list[Fresh],
    ) -> Outcome:
        candidate, message, result = accepted[0]
        provider_key = (
            f"{candidate.channel}#{result.provider_message_id}" if result.provider_message_id else None
        )
        self._timeline(request, item, candidate.channel, message.text, "sent", provider_key)
        self.outbox.record_sent(
            request.notification_id,
            format_timestamp(now),
            fresh,
            provider_message_id=result.provider_message_id or None,
            extra={
                "channel": candidate.channel,
                "channels": [c.channel for c, _, _ in accepted],
                "recipient": candidate.to.key,
                "text": message.text,
                "template_version": rendered.version if rendered else None,
                "language": rendered.language if rendered else None,
                "unconfirmed": True if result.details.get("unconfirmed") else None,
                "skipped": [f"{c}: {why}" for c, why in skipped] or None,
            },
        )
        return Outcome(
            request.notification_id,
            "sent",
            candidate.channel,
            channels=tuple(c.channel for c, _, _ in accepted),
            skipped=tuple(skipped),
        )

    def _fail(
        self,
        request: NotificationRequested,
        item: dict[str, Any],
        code: str,
        reason: str,
        now: datetime,
        skipped: list[tuple[str, str]] | None = None,
    ) -> Outcome:
        error = f"{code}: {reason}"
        self._timeline(request, item, request.channel or "none", request.text, "failed")
        self.outbox.mark(
            request.notification_id,
            "failed",
            format_timestamp(now),
            error=error,
            extra={"skipped": [f"{c}: {why}" for c, why in skipped or []] or None},
        )
        return Outcome(
            request.notification_id, "failed", request.channel, error, skipped=tuple(skipped or ())
        )

    def _timeline(
        self,
        request: NotificationRequested,
        item: dict[str, Any],
        channel: str,
        text: str,
        status: str,
        provider_key: str | None = None,
    ) -> None:
        if not request.conversation_id:
            return
        try:
            self.conversations.record_outbound(
                request.conversation_id,
                message_id=request.notification_id,
                channel=channel,
                text=text,
                timestamp=item["created_at"],
                author=request.author,
                status=status,
                citations=[c.model_dump() for c in request.citations] or None,
                # A reaction names the provider's id of the message it reacts to.
                provider_key=provider_key,
            )
        except ConversationNotFound:
            return  # erased meanwhile (or never there): nothing to add it to


def _stamp(message: OutboundMessage, timestamp: str, now: datetime) -> OutboundMessage:
    return replace(message, timestamp=timestamp, epoch=int(now.timestamp()))


def _describe(skipped: list[tuple[str, str]]) -> str:
    return "; ".join(f"{channel}: {why}" for channel, why in skipped) or "no channel could be used"
