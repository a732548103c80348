"""``make bench``: every benchmark, one results file and the same on stdout.

::

    .venv/bin/python -m bench.run [--quick] [--out build/bench/results.md]

The results go to the untracked ``build/bench/results.md`` unless ``--out`` says otherwise;
``make bench RECORD=1`` writes the tracked ``bench/results.md`` that the README quotes.

Runs, in order: :mod:`bench.cost`, :mod:`bench.conversation_length`, :mod:`bench.coldstart`,
the pytest-benchmark of ``bench/test_handler_overhead.py`` (in a subprocess) and
:mod:`bench.scaling`, and
writes their sections under one header naming the date, the machine and the commit.
``--quick`` runs smaller workloads (for trying the tooling, not for the README).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OVERHEAD_TARGET_MS = 0.5


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def handler_overhead(out: Any) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "overhead.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "bench/test_handler_overhead.py",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--benchmark-json={report}",
                "--benchmark-disable-gc",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
        summary = (done.stdout.strip().splitlines() or [""])[-1]
        rows = json.loads(report.read_text())["benchmarks"] if report.is_file() else []
    out.write(
        "## Handler overhead (parse + verify + validate + build the event, no AWS)\n\n"
        f"pytest-benchmark, `bench/test_handler_overhead.py` ({summary}).\n\n"
        "| webhook | median µs | mean µs | min µs | rounds | target ≤ 500 µs |\n"
        "|---|---:|---:|---:|---:|---|\n"
    )
    for row in sorted(rows, key=lambda r: r["name"]):
        stats = row["stats"]
        median_us = stats["median"] * 1e6
        verdict = "meets" if median_us <= OVERHEAD_TARGET_MS * 1000 else "misses"
        out.write(
            f"| {row['name'].removeprefix('test_')} | {median_us:.0f} | {stats['mean'] * 1e6:.0f} | "
            f"{stats['min'] * 1e6:.0f} | {stats['rounds']} | {verdict} |\n"
        )
    if done.returncode != 0:
        out.write(f"\n**pytest failed** (exit {done.returncode}):\n\n```\n{done.stdout[-2000:]}\n```\n")
    out.write("\n")
    return rows


class Tee(io.TextIOBase):
    def __init__(self, *streams: Any) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small workloads, to try the tooling")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "results.md")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)

    from bench import coldstart, conversation_length, cost, scaling  # noqa: PLC0415 - after argument parsing

    buffer = io.StringIO()
    out = Tee(buffer, sys.stdout)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    out.write(
        f"# omni benchmarks\n\n{now} · {machine()} · commit {commit()}"
        f"{' · --quick' if args.quick else ''}\n\n"
    )
    quick = args.quick
    sections = [
        ("cost", lambda: cost.run(3 if quick else 10, 2 if quick else 3, out)),
        # One more message at 1 and at 500 stored messages (seeding 500 takes a few minutes).
        ("conversation length", lambda: conversation_length.run(30 if quick else 500, out)),
        ("cold start", lambda: coldstart.run(2 if quick else 5, out)),
        ("handler overhead", lambda: handler_overhead(out)),
        # 100,000 profiles (300,000 items) make moto's own operations walk the whole table: one
        # profile-merge batch took 113 s. 20,000 is what the emulator handles; see docs/scaling.md.
        ("scaling", lambda: scaling.run(2_000 if quick else 20_000, 100 if quick else 500, 8, out)),
    ]
    failed = 0
    for name, section in sections:
        try:
            section()
        except Exception as exc:  # one broken section must not hide the others
            failed += 1
            out.write(f"## {name}: failed\n\n`{type(exc).__name__}: {exc}`\n\n")
        args.out.write_text(buffer.getvalue())
    args.out.write_text(buffer.getvalue())
    if failed:
        print(f"\n{failed} section(s) failed", file=sys.stderr)
        return 1
    print(f"\nwritten to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
