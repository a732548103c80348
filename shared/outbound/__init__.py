"""Outbound delivery: which channel, whether and when, what exactly, and through which provider.

* :mod:`shared.outbound.policy` - channel choice, consent, quiet hours, the WhatsApp and
  Messenger 24-hour windows (pure functions, no I/O);
* :mod:`shared.outbound.templates` - versioned templates per language, variables validated;
* :mod:`shared.outbound.adapters` - one adapter per provider behind one interface, and the
  local mode that writes the provider request into the outbox instead of sending it.

:mod:`functions.notify.notifier` ties them together with the outbox (idempotency) and the timeline.
"""
