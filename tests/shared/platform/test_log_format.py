"""The JSON log line every function writes: PII masked, no keys the platform already records."""

from __future__ import annotations

import io
import json
import logging
import os
from unittest import mock

from shared.platform.observability import REDUNDANT_KEYS, new_logger, set_correlation
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


def test_routine_lines_are_compact_and_keep_the_correlation_id() -> None:
    """An INFO line (one per function per message) leaves off the code location, the trace id
    and a false cold start; a warning keeps them. Both carry the correlation id."""
    stream = io.StringIO()
    logger = new_logger(service="log-compact-test", logger_handler=logging.StreamHandler(stream))

    @logger.inject_lambda_context
    def handler(event: dict[str, str], lambda_context: object) -> None:
        set_correlation(logger, "sms#SM123")
        logger.info("message recorded", extra={"conversation_id": "conv_1", "merges": [], "survey": None})
        logger.warning("record failed")
        set_correlation(logger, None)

    with mock.patch.dict(
        os.environ, {"_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"}
    ):
        handler({}, context("routing"))
        handler({}, context("routing"))
    lines = [json.loads(raw) for raw in stream.getvalue().splitlines()]
    info, warning = lines[-2], lines[-1]
    assert info["correlation_id"] == warning["correlation_id"] == "sms#SM123"
    assert not {"location", "xray_trace_id", "cold_start", "sampling_rate", "merges", "survey"} & set(info)
    assert info["conversation_id"] == "conv_1"
    assert {"location", "xray_trace_id", "cold_start"} <= set(warning)
