"""One-click unsubscribe end to end on the local stack: a marketing e-mail lands in ``omni
outbox`` with an https ``List-Unsubscribe`` link to this stack; opening it changes nothing,
POSTing ``List-Unsubscribe=One-Click`` to it (what Gmail and Yahoo do) opts the customer
out, and the next marketing e-mail is not sent."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import redirect_stdout
from email import message_from_string
from typing import Any

import pytest
import requests

from functions.notify import handler as notify_handler
from omni import cli
from omni.local.auth import issue_agent_token
from omni.local.runtime import LocalRuntime
from shared.contracts.events import Identity, NotificationRequested
from shared.contracts.models import Consent
from shared.repositories.customers import CustomerRepository

pytestmark = pytest.mark.e2e

STAGE = "links-e2e"
CUSTOMER = "cust-links"
SALE = {"first_name": "Ana", "discount_code": "SPRING"}


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("OMNI_PUBLIC_API_URL", raising=False)
        patch.setattr(notify_handler, "_notifier", None)  # built by notify in this runtime
        with LocalRuntime(port=0, stage=STAGE) as running:
            yield running


def outbox(runtime: LocalRuntime) -> dict[str, dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["outbox", "--endpoint", runtime.endpoint_url, "--stage", STAGE, "--json"]) == 0
    return {item["notification_id"]: item for item in json.loads(out.getvalue())}


def publish_sale(runtime: LocalRuntime, notification_id: str) -> None:
    request = NotificationRequested(
        notification_id=notification_id,
        customer_id=CUSTOMER,
        kind="notification",
        urgency="marketing",
        template="spring_sale",
        variables=SALE,
        author="campaigns",
    )
    result = runtime.client("events").put_events(
        Entries=[
            {
                "Source": "omni.campaigns",
                "DetailType": "notification.requested",
                "Detail": request.model_dump_json(),
                "EventBusName": runtime.physical[("bus", "events")],
            }
        ]
    )
    assert result["FailedEntryCount"] == 0


def email_consent() -> dict[str, Any]:
    profile = CustomerRepository().get_profile(CUSTOMER) or {}
    return dict(profile.get("consent_email") or {})


def test_one_click_unsubscribe_from_the_outbox_stops_the_next_marketing_email(runtime: LocalRuntime) -> None:
    customers = CustomerRepository()
    customers.create(
        CUSTOMER, [Identity(type="email", value="ana@example.com", verified=True)], "2026-01-01T00:00:00Z"
    )
    # Any time of day: no quiet hours for this customer (an agent sets them, start == end: none).
    chosen = requests.patch(
        f"{runtime.base_url}/customers/{CUSTOMER}",
        json={"channel_preferences": ["email"], "quiet_hours": {"start": "00:00", "end": "00:00"}},
        headers={"Authorization": f"Bearer {issue_agent_token('agent-e2e', 600)}"},
        timeout=10,
    )
    assert chosen.status_code == 200, chosen.text
    customers.set_consent(
        CUSTOMER, "email", Consent(status="opted_in", at="2026-01-01T00:00:00.000000Z", source="signup")
    )

    publish_sale(runtime, "sale:1")
    runtime.wait_idle(timeout=30)
    first = outbox(runtime)["sale:1"]
    assert (first["status"], first["channel"]) == ("sent", "email")
    mime = message_from_string(first["attempts"]["email"]["request"]["body"]["Content"]["Raw"]["Data"])
    https, mailto = (part.strip().strip("<>") for part in str(mime["List-Unsubscribe"]).split(","))
    assert https.startswith(f"{runtime.base_url}/links/unsubscribe?t=")
    assert mailto.startswith("mailto:support+unsubscribe-cust-links@")
    assert mime["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # A mail scanner or link preview fetches the link: nothing changes.
    page = requests.get(https, timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert "Unsubscribe" in page.text
    assert email_consent()["status"] == "opted_in"

    # The mail client's one-click POST (RFC 8058), then a second click.
    for _ in range(2):
        clicked = requests.post(https, data={"List-Unsubscribe": "One-Click"}, timeout=10)
        assert clicked.status_code == 200, clicked.text
    assert (email_consent()["status"], email_consent()["source"]) == ("opted_out", "unsubscribe-link")

    # A forged link is refused and changes nothing.
    forged = https[:-3] + ("AAA" if not https.endswith("AAA") else "BBB")
    assert requests.post(forged, data={"List-Unsubscribe": "One-Click"}, timeout=10).status_code == 403

    publish_sale(runtime, "sale:2")
    runtime.wait_idle(timeout=30)
    second = outbox(runtime)["sale:2"]
    assert second["status"] == "failed"
    assert second["attempts"] == {}
    assert "email: no_marketing_opt_in" in second["skipped"]
