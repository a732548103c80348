"""Outbound delivery: which channel, whether and when, what exactly, and through which provider.

* :mod:`shared.outbound.policy` - channel choice, consent, quiet hours, the WhatsApp and
  Messenger 24-hour windows (pure functions, no I/O);
* :mod:`shared.outbound.templates` - versioned templates per language, variables validated;
* :mod:`shared.outbound.adapters` - the one interface every provider adapter implements, and the
  local mode that writes the provider request into the outbox instead of sending it;
* one module per provider: :mod:`~shared.outbound.twilio` (SMS, voice), :mod:`~shared.outbound.meta`
  (WhatsApp, Messenger), :mod:`~shared.outbound.ses` (e-mail), :mod:`~shared.outbound.webchat`;
  :mod:`shared.outbound.registry` builds one adapter per channel.

:mod:`functions.notify.notifier` ties them together with the outbox (idempotency) and the timeline.
"""
