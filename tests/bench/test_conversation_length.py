"""Reads per message do not grow with the conversation (bench/conversation_length.py, small scale).

The bench measures one more message at 1 and at 500 stored messages; here 1 and 30 (the
routing history's bound), through the same local stack and the normal inbound path.
"""

from __future__ import annotations

import io
import logging
import sys

from bench import conversation_length
from bench.cost import LogBytes


def test_one_more_message_reads_the_same_at_1_and_at_30_stored_messages() -> None:
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)
    real_stdout = sys.stdout
    sys.stdout = LogBytes(lambda: None)  # type: ignore[assignment]  # the functions' log lines
    try:
        result = conversation_length.measure(30, chunk=10, run_id="62")
    finally:
        sys.stdout = real_stdout
        logging.getLogger().setLevel(level)
    same = result["same topic"]
    assert same["short"]["rru"] > 0
    assert abs(conversation_length.ratio(result) - 1.0) < 0.01, same
    assert same["long"]["requests"] == same["short"]["requests"]
    assert same["long"]["rru_by_item"] == same["short"]["rru_by_item"]
    # A message that is handed over anew reads the latest messages: bounded by the routing
    # history (30 messages of this size: a few RRU more than at one stored message).
    anew = result["hands over anew"]
    assert anew["long"]["rru"] - anew["short"]["rru"] <= 4
    out = io.StringIO()
    conversation_length.report(result, out)
    assert "30 ÷ 1: **1.00**" in out.getvalue()
