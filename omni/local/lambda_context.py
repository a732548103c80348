"""The context object Lambda passes to a handler, for local invocations."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from omni.local.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_REGION


@dataclass
class LambdaContext:
    """What ``handler(event, context)`` gets as ``context`` (the attributes Powertools reads).

    One per invocation: a new ``aws_request_id`` each time, and a deadline computed
    from the function's timeout when the invocation starts.
    """

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    log_group_name: str
    log_stream_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    timeout_s: float = 3.0
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if not self._deadline:
            self._deadline = time.monotonic() + self.timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))

    @classmethod
    def for_function(
        cls,
        physical_name: str,
        *,
        memory_mb: int,
        timeout_s: float,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> LambdaContext:
        """A fresh context for one invocation of the function deployed as ``physical_name``."""
        request_id = str(uuid.uuid4())
        today = datetime.now(UTC).strftime("%Y/%m/%d")
        return cls(
            function_name=physical_name,
            memory_limit_in_mb=memory_mb,
            invoked_function_arn=f"arn:aws:lambda:{region}:{account_id}:function:{physical_name}",
            log_group_name=f"/aws/lambda/{physical_name}",
            log_stream_name=f"{today}/[$LATEST]{uuid.uuid4().hex}",
            aws_request_id=request_id,
            timeout_s=timeout_s,
        )
