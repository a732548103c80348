"""Reads per message against the length of the conversation: one more message into a conversation
of 1 stored message and into one of ``--length`` (500) stored messages.

::

    .venv/bin/python -m bench.conversation_length [--length 500]

One local stack. A customer's conversation is filled through the normal inbound path (signed
SMS webhooks, profile merge, routing, the acknowledgement, KPIs: everything a real message
leaves behind), ``--chunk`` webhooks at a time, the stack drained after each chunk; the meter
is off while seeding (it would double the emulator's work). Then, with the meter on, one more
message from that customer and one more from a customer whose conversation holds one
message: the DynamoDB requests, RRU and WRU of each (the whole pipeline, every function), by
table and item. The issue's target: the RRU ratio, long ÷ short, is 1.0 (no read per message
grows with the conversation).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from typing import Any

from bench.cost import TEXTS, Customer, LogBytes, Workload
from bench.meter import Meter, Snapshot
from omni.local import fast_transactions
from omni.local.runtime import LocalRuntime

DRAIN_S = 300.0


def _figures(snap: Snapshot) -> dict[str, Any]:
    calls = snap.calls_of()
    requests: Counter[tuple[str, str]] = Counter()
    for (table, kind, _), n in snap.item_requests.items():
        requests[(table, kind)] += n
    wru: Counter[tuple[str, str]] = Counter()
    for (table, kind, _), n in snap.wru_by_item.items():
        wru[(table, kind)] += n
    return {
        "requests": sum(n for (service, _), n in calls.items() if service == "dynamodb"),
        "rru": sum(snap.rru.values()),
        "wru": sum(snap.wru.values()),
        "rru_by_function": Counter(snap.rru),
        "rru_by_item": Counter(snap.rru_by_item),
        "requests_by_item": requests,
        "wru_by_item": wru,
    }


def _send(workload: Workload, customer: Customer, text: int, k: int) -> None:
    """The customer's ``k``-th message with ``TEXTS[text]`` (the workload picks the text by round)."""
    response = workload.send(customer, k * len(TEXTS) + (text - customer.index) % len(TEXTS))
    if response.status_code not in (200, 202):
        raise RuntimeError(f"webhook refused: {response.status_code} {response.text[:200]}")


#: The conversations' topic (billing) and, for the second measurement, another (delivery).
SAME, OTHER = 0, 1
#: What is measured: one more message on the conversation's topic (the common case: the
#: conversation stays where it is), and one on another topic (routing hands it over anew,
#: which reads the latest ``history_messages`` of it: bounded, not constant below that).
CASES = (("same topic", SAME), ("hands over anew", OTHER))


def measure(length: int, chunk: int = 20, run_id: str = "61") -> dict[str, Any]:
    """The figures of one more message at conversation length 1 and at ``length``."""
    fast_transactions.make_moto_transactions_fast()
    with LocalRuntime(port=0, stage="length", schedule_interval_s=3600) as runtime:
        workload = Workload(runtime, threads=min(chunk, 8), run_id=run_id)
        long, short = Customer("sms", 1), Customer("sms", 2)
        started = time.monotonic()
        sent = 0
        while sent < length:
            count = min(chunk, length - sent)
            workload.parallel(lambda k: _send(workload, long, SAME, k), list(range(sent, sent + count)))
            sent += count
            runtime.wait_idle(timeout=DRAIN_S)
        _send(workload, short, SAME, 0)
        runtime.wait_idle(timeout=DRAIN_S)
        seed_s = time.monotonic() - started
        meter = Meter(runtime.endpoint_url, runtime.region).install()
        results: dict[str, Any] = {"length": length, "seed_s": seed_s}
        try:
            for case, text in CASES:
                for name, customer, stored in (("short", short, 1), ("long", long, length)):
                    with meter.window() as snap:
                        _send(workload, customer, text, stored + 1)
                        runtime.wait_idle(timeout=DRAIN_S)
                    results.setdefault(case, {})[name] = _figures(snap)
        finally:
            meter.uninstall()
    return results


def ratio(result: dict[str, Any], case: str = CASES[0][0], key: str = "rru") -> float:
    figures = result[case]
    return float(figures["long"][key]) / max(1e-9, float(figures["short"][key]))


def report(result: dict[str, Any], out: Any) -> None:
    length = result["length"]
    same = ratio(result)
    verdict = "meets" if abs(same - 1.0) < 0.005 else "MISSES"
    out.write(
        "## Reads per message against the conversation's length (local stack)\n\n"
        f"One more inbound SMS into a conversation of 1 stored message and into one of {length:,} "
        f"(both filled through the normal inbound path, {result['seed_s']:.0f} s); the whole "
        "pipeline's DynamoDB work for that message (profile merge, routing, notify, KPIs), "
        "`python -m bench.conversation_length`. "
        f"RRU per message, {length:,} ÷ 1: **{same:.2f}** on the conversation's topic "
        f"(target 1.0: {verdict}); {ratio(result, CASES[1][0]):.2f} for a message that routing "
        "hands over anew (to another queue: the hand-over context reads the latest "
        "`history_messages`, 30, of the conversation — bounded, equal from 30 stored messages on).\n\n"
        "| message | stored messages | DynamoDB requests | RRU | WRU |\n|---|---:|---:|---:|---:|\n"
    )
    for case, _ in CASES:
        for name, stored in (("short", 1), ("long", length)):
            figures = result[case][name]
            out.write(
                f"| {case} | {stored:,} | {figures['requests']} | {figures['rru']:.1f} | "
                f"{figures['wru']:.1f} |\n"
            )
    for case, _ in CASES:
        short, long = result[case]["short"], result[case]["long"]
        out.write(
            f"\n{case}, by table and item (1 / {length:,} stored; requests: reads and writes naming "
            "such an item):\n\n| table | item | requests | RRU | WRU |\n|---|---|---|---|---|\n"
        )
        keys = sorted(set(short["requests_by_item"]) | set(long["requests_by_item"]))
        for key in keys:
            out.write(
                f"| {key[0]} | {key[1]} | {short['requests_by_item'][key]} / "
                f"{long['requests_by_item'][key]} | {short['rru_by_item'][key]:.2f} / "
                f"{long['rru_by_item'][key]:.2f} | {short['wru_by_item'][key]:.0f} / "
                f"{long['wru_by_item'][key]:.0f} |\n"
            )
    out.write("\n")


def run(length: int, out: Any) -> dict[str, Any]:
    logging.getLogger().setLevel(logging.ERROR)
    real_stdout = sys.stdout
    sys.stdout = LogBytes(lambda: None)  # type: ignore[assignment]  # function logs: counted, not printed
    try:
        result = measure(length)
    finally:
        sys.stdout = real_stdout
    report(result, out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=500)
    args = parser.parse_args(argv)
    run(args.length, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
