"""The JSON log line every function writes: PII masked, no keys the platform already records."""

from __future__ import annotations

import io
import json
import logging

from shared.platform.observability import REDUNDANT_KEYS, new_logger
from tests.helpers import context


def test_log_line_is_masked_and_carries_no_redundant_lambda_keys() -> None:
    stream = io.StringIO()
    logger = new_logger(service="log-format-test", logger_handler=logging.StreamHandler(stream))

    @logger.inject_lambda_context
    def handler(event: dict[str, str], lambda_context: object) -> None:
        logger.info("reply to +4915112345678", extra={"email": "ana.lima@example.com"})

    handler({}, context("routing"))
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"] == "reply to +49*********78"
    assert line["email"] == "a***@example.com"
    assert line["function_name"] == "omni-test-routing"
    assert "function_request_id" in line
    for key in REDUNDANT_KEYS:
        assert key not in line
