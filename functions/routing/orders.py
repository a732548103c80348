"""Order lookup for the bot's order-status answers: an adapter interface and two implementations.

* :class:`HttpOrderLookup` asks the company's order system:
  ``GET <ORDER_LOOKUP_URL>/customers/<customer id>/orders/latest`` answering
  ``{"order_id": "...", "status": "...", "eta": "..."}`` (404 = no order), with an
  optional bearer token from ``ORDER_LOOKUP_TOKEN``.
* :class:`SampleOrderLookup` is canned sample data for local runs and demos
  (``ORDER_LOOKUP=sample``). Never use it in a deployment.

Without either setting there is no lookup and order-status questions go to a person.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from shared.platform import settings


@dataclass(frozen=True)
class OrderStatus:
    order_id: str
    status: str
    eta: str


class OrderLookup(Protocol):
    def latest_order(self, customer_id: str) -> OrderStatus | None:
        """The customer's latest order, or None when they have none (or it cannot be told)."""
        ...


class SampleOrderLookup:
    """Local sample data: every customer has one order on its way. For demos only."""

    def latest_order(self, customer_id: str) -> OrderStatus | None:
        digits = "".join(c for c in customer_id if c.isdigit())[:6] or "1001"
        return OrderStatus(order_id=f"SAMPLE-{digits}", status="shipped", eta="in 2 days")


class HttpOrderLookup:
    """The company's order system over HTTPS (urllib3, which botocore already ships)."""

    def __init__(
        self, base_url: str, token: str | None = None, timeout_s: float = 3.0, pool: Any = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self._pool = pool

    @property
    def pool(self) -> Any:
        if self._pool is None:
            import urllib3  # noqa: PLC0415 - only when a lookup is configured

            self._pool = urllib3.PoolManager(retries=urllib3.Retry(total=2, backoff_factor=0.2))
        return self._pool

    def latest_order(self, customer_id: str) -> OrderStatus | None:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        url = f"{self.base_url}/customers/{quote(customer_id, safe='')}/orders/latest"
        try:
            response = self.pool.request("GET", url, headers=headers, timeout=self.timeout_s)
        except Exception:
            return None
        if response.status != 200:
            return None
        try:
            body = json.loads(response.data)
            return OrderStatus(
                order_id=str(body["order_id"]), status=str(body["status"]), eta=str(body.get("eta") or "-")
            )
        except (ValueError, KeyError, TypeError):
            return None


def order_lookup_from_env() -> OrderLookup | None:
    url = os.environ.get(settings.ORDER_LOOKUP_URL)
    if url:
        return HttpOrderLookup(url, os.environ.get(settings.ORDER_LOOKUP_TOKEN))
    if os.environ.get(settings.ORDER_LOOKUP) == "sample":
        return SampleOrderLookup()
    return None
