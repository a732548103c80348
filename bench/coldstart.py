"""Cold start from the built artifact: handler import against ``import boto3``, first invocation, sizes.

::

    .venv/bin/python -m bench.coldstart [--repeat 5] [--only routing,notify]

Every function's zip is built as a deployment builds it (:func:`infra.bundling.build_function_zips`,
bytecode included — compiled for this interpreter's Python, the one that runs the probe; a
deployment compiles for the runtime's) and extracted into a task folder of its own. For
every function, ``--repeat`` fresh interpreters each time ``import boto3`` and then the
handler's module from that folder (what Lambda's init does before the first event), with
the function's environment and as in Lambda: ``LAMBDA_TASK_ROOT`` is the extracted zip,
``PYTHONDONTWRITEBYTECODE=1`` (Lambda's file system is read-only: only the bytecode the
artifact ships is used), tracing on, and only the modules the deployment has importable
(the standard library, the runtime's boto3 and what it needs, the layer's dependencies
and the function's zip; e.g. ``cryptography`` is in this virtual environment but not in
the layer, so it is hidden). The layer's dependencies come from this virtual environment,
with the bytecode pip compiled for them: the built layer holds arm64 wheels for the
runtime's Python, which cannot load here. "no bytecode" repeats the launch from a zip
built without bytecode (what Lambda ran before the artifacts carried it).

The ratio is the handler import (boto3 already loaded) over the boto3 import of the same
launch; target ≤ 1.3. Times are the process's CPU time (``time.process_time``): imports
are CPU-bound, and CPU time does not grow when other work shares the machine as wall time
does. The median launch is reported. For a function over the target,
``python -X importtime`` names its heaviest imports.

First invocation: work the functions do on their first event instead of at import,
timed in the same launch right after the import: creating the Powertools Tracer (X-Ray
SDK import, botocore patching; ``shared.platform.observability.LazyTracer``) and building the
validators of the pydantic models whose build is deferred (``defer_build=True``). The
model figure is an upper bound: it builds every deferred model the handler's modules
define, where one event builds only those its path uses. "cold ratio" is import plus
first-invocation work over boto3.

Sizes: the function's zip as ``infra.bundling.build_function_zip`` builds it for
deployment; the dependency layer's zip when ``build/layer/`` has one for the current
requirements (``make deploy`` builds it, needs PyPI), otherwise an estimate: the
installed size of the runtime dependencies in this virtual environment (x86_64 wheels
for this Python, not the arm64 ones the layer holds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any

from infra.bundling import (
    Compiler,
    build_function_zips,
    distribution_name,
    layer_key,
    runtime_dependencies,
)
from topology import TOPOLOGY, Function, function_environment

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.3
#: Distributions the Lambda Python runtime provides (boto3 and what it pulls in).
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)

#: Makes what the deployment does not ship unimportable (``sys.argv[2]``: the modules it has).
_HIDE = """
import importlib, importlib.abc, json, sys, time

allowed = set(json.loads(sys.argv[2]))


class Hidden(importlib.abc.MetaPathFinder):
    # What the deployment does not ship cannot be imported, as in Lambda.
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in allowed or top in sys.stdlib_module_names or top.startswith("_"):
            return None
        raise ModuleNotFoundError(f"No module named {name!r} (not in the deployment)", name=name)


sys.meta_path.insert(0, Hidden())
"""

_PROBE = (
    _HIDE
    + """
t0 = time.process_time()
import boto3
t1 = time.process_time()
module = importlib.import_module(sys.argv[1])
t2 = time.process_time()
tracer = getattr(module, "tracer", None)
if tracer is not None and tracer.tracer is None:
    raise SystemExit("tracing is off in the probe: it must run as in Lambda")
t3 = time.process_time()
import pydantic
deferred = {
    value
    for name, mod in list(sys.modules.items())
    if name.partition(".")[0] in ("shared", "functions")
    for value in list(vars(mod).values())
    if isinstance(value, type)
    and issubclass(value, pydantic.BaseModel)
    and value.__module__.partition(".")[0] in ("shared", "functions")
    and not value.__pydantic_complete__
}
for model in deferred:
    model.model_rebuild()
t4 = time.process_time()
print(json.dumps({
    "boto3_ms": (t1 - t0) * 1000,
    "handler_ms": (t2 - t1) * 1000,
    "tracer_ms": (t3 - t2) * 1000,
    "models_ms": (t4 - t3) * 1000,
    "deferred_models": len(deferred),
}))
"""
)


def deployed_modules() -> list[str]:
    """Top-level modules the deployment can import (besides the standard library)."""
    _, layer = installed_runtime_size()
    shipped = set(layer) | RUNTIME_PROVIDED
    return sorted(
        {
            module
            for module, distributions in metadata.packages_distributions().items()
            if any(distribution_name(d) in shipped for d in distributions)
        }
        | {"shared", "functions"}
    )


def environment(fn: Function, task: Path) -> dict[str, str]:
    physical: dict[tuple[Any, str], str] = {("bus", TOPOLOGY.bus.name): f"omni-bench-{TOPOLOGY.bus.name}"}
    for kind, resources in (
        ("table", TOPOLOGY.tables),
        ("secret", TOPOLOGY.secrets),
        ("bucket", TOPOLOGY.buckets),
    ):
        for resource in resources:
            physical[(kind, resource.name)] = f"omni-bench-{resource.name}"
    for queue in TOPOLOGY.queues:
        physical[("queue", queue.name)] = (
            f"https://sqs.us-east-1.amazonaws.com/123456789012/omni-bench-{queue.name}"
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNI_", "POWERTOOLS_"))}
    with contextlib.suppress(KeyError):
        env.update(function_environment(TOPOLOGY, fn, physical, "bench"))
    env.update(
        {
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": str(task),
            # As in Lambda: tracing on (POWERTOOLS_TRACE_DISABLED was dropped above).
            "LAMBDA_TASK_ROOT": str(task),
            "AWS_LAMBDA_FUNCTION_NAME": f"omni-bench-{fn.name}",
        }
    )
    return env


def probe(fn: Function, allowed: list[str], task: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, fn.module, json.dumps(allowed)],
        capture_output=True,
        text=True,
        env=environment(fn, task),
        cwd=task,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def heaviest_imports(fn: Function, allowed: list[str], task: Path, top: int = 6) -> list[tuple[str, float]]:
    """Where the handler's import time goes: self time summed per top-level package (ms).

    ``python -X importtime`` after ``import boto3`` (whose modules are then cached and
    cost nothing), so only what the handler adds is counted.
    """
    code = _HIDE + "import boto3; importlib.import_module(sys.argv[1])"
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code, fn.module, json.dumps(allowed)],
        capture_output=True,
        text=True,
        env=environment(fn, task),
        cwd=task,
        check=True,
    )
    per_package: dict[str, float] = {}
    seen_boto = False
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
        if not self_us.isdigit():
            continue
        if name == "boto3":
            seen_boto = True
            continue
        if seen_boto:
            parts = name.split(".")
            package = ".".join(parts[:2]) if parts[0] in ("shared", "functions") else parts[0]
            per_package[package] = per_package.get(package, 0.0) + int(self_us) / 1000
    return sorted(per_package.items(), key=lambda x: -x[1])[:top]


def extract_artifacts(build: Path, *, bytecode: bool) -> dict[str, tuple[Path, int]]:
    """Build every function's zip into ``build`` and extract it: task folder and zip size by function."""
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    compiler = Compiler(sys.executable, here) if bytecode else None
    artifacts = build_function_zips(ROOT, TOPOLOGY.functions, build / "zips", compiler=compiler)
    tasks = {}
    for name, artifact in artifacts.items():
        task = build / "task" / name
        with zipfile.ZipFile(artifact.path) as archive:
            archive.extractall(task)
        tasks[name] = (task, artifact.path.stat().st_size)
    return tasks


def _requirements(dist: metadata.Distribution, extras: set[str]) -> list[tuple[str, set[str]]]:
    out = []
    for raw in dist.requires or []:
        name_part, _, marker = raw.partition(";")
        if marker and "extra" in marker:
            if not any(f'extra == "{extra}"' in marker for extra in extras):
                continue
        elif marker:
            try:
                from packaging.markers import Marker  # noqa: PLC0415

                if not Marker(marker).evaluate({"extra": ""}):
                    continue
            except Exception:
                pass
        requested = set()
        if "[" in name_part:
            requested = {e.strip() for e in name_part.split("[", 1)[1].split("]", 1)[0].split(",")}
        out.append((distribution_name(name_part), requested))
    return out


def installed_runtime_size() -> tuple[int, list[str]]:
    """Bytes the runtime dependencies (and theirs) take in this environment, minus the runtime's own."""
    pending = [
        (
            distribution_name(r),
            {e.strip() for e in r.split("[", 1)[1].split("]", 1)[0].split(",")} if "[" in r else set(),
        )
        for r in runtime_dependencies(ROOT / "pyproject.toml")
    ]
    seen: set[str] = set()
    total = 0
    while pending:
        name, extras = pending.pop()
        if name in seen or name in RUNTIME_PROVIDED:
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for file in dist.files or []:
            path = Path(str(dist.locate_file(file)))
            if path.is_file() and "__pycache__" not in path.parts:
                total += path.stat().st_size
        pending.extend(_requirements(dist, extras))
    return total, sorted(seen)


def layer_size() -> tuple[int, str]:
    requirements = runtime_dependencies(ROOT / "pyproject.toml")
    for bytecode in (True, False):
        built = ROOT / "build" / "layer" / f"{layer_key(requirements, bytecode=bytecode)}.zip"
        if built.is_file():
            what = "with bytecode for Python 3.13" if bytecode else "without bytecode"
            return built.stat().st_size, f"layer zip {built.relative_to(ROOT)} (arm64, {what}; make package)"
    size, names = installed_runtime_size()
    return size, (
        "estimate: installed size (unzipped, no __pycache__) of " + ", ".join(names) + " in .venv; "
        "the arm64 layer was not built (needs PyPI: make package builds it)"
    )


def run(repeat: int, out: Any, only: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    results = []
    allowed = deployed_modules()
    with tempfile.TemporaryDirectory() as tmp:
        shipped = extract_artifacts(Path(tmp) / "bytecode", bytecode=True)
        plain = extract_artifacts(Path(tmp) / "plain", bytecode=False)
        for fn in TOPOLOGY.functions:
            if only and fn.name not in only:
                continue
            task, zip_bytes = shipped[fn.name]
            try:
                samples = [probe(fn, allowed, task) for _ in range(repeat)]
                without = [probe(fn, allowed, plain[fn.name][0]) for _ in range(repeat)]
            except subprocess.CalledProcessError as exc:
                results.append({"function": fn.name, "error": (exc.stderr or "").strip().splitlines()[-1:]})
                continue
            samples.sort(key=lambda s: s["handler_ms"] / s["boto3_ms"])
            median = samples[len(samples) // 2]
            ratio = median["handler_ms"] / median["boto3_ms"]
            row: dict[str, Any] = {
                "function": fn.name,
                "boto3_ms": median["boto3_ms"],
                "handler_ms": median["handler_ms"],
                "ratio": ratio,
                "handler_ms_median": statistics.median(s["handler_ms"] for s in samples),
                "tracer_ms": statistics.median(s["tracer_ms"] for s in samples),
                "models_ms": statistics.median(s["models_ms"] for s in samples),
                "deferred_models": median["deferred_models"],
                "cold_ratio": (
                    median["handler_ms"]
                    + statistics.median(s["tracer_ms"] for s in samples)
                    + statistics.median(s["models_ms"] for s in samples)
                )
                / median["boto3_ms"],
                "zip_bytes": zip_bytes,
                "no_bytecode_ratio": statistics.median(s["handler_ms"] / s["boto3_ms"] for s in without),
            }
            if ratio > TARGET_RATIO:
                row["heaviest"] = heaviest_imports(fn, allowed, task)
            results.append(row)
    layer_bytes, layer_note = layer_size()
    out.write(
        "## Cold start (imports, from the built artifact) and package size\n\n"
        "Handler import from the extracted function zip, with the bytecode it ships "
        "(`PYTHONDONTWRITEBYTECODE=1`: nothing is compiled and kept), after `import boto3`. "
        f"CPU time; fresh interpreter per launch ({repeat} launches per function, median launch), Python "
        f"{sys.version.split()[0]} on this machine (the zips' bytecode is compiled for it here; "
        "a deployment compiles for the runtime's Python 3.13); the Lambda runtime is python3.13 arm64, "
        "where absolute times differ but the ratio is what the target is about. "
        '"no bytecode": the same launch from a zip without bytecode (compiled at every cold start).\n\n'
        "| function | import boto3 ms | handler import ms (after boto3) | ratio | target ≤ 1.3x "
        "| no bytecode: ratio "
        "| 1st invocation: tracer ms | 1st invocation: models ms (≤, count) | cold ratio | zip KiB |\n"
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n"
    )
    for row in results:
        if "error" in row:
            out.write(f"| {row['function']} | | import failed: {' '.join(row['error'])} | | | | | | | |\n")
            continue
        verdict = "meets" if row["ratio"] <= TARGET_RATIO else f"misses by {row['ratio'] - TARGET_RATIO:.2f}x"
        out.write(
            f"| {row['function']} | {row['boto3_ms']:.0f} | {row['handler_ms']:.0f} | {row['ratio']:.2f} "
            f"| {verdict} | {row['no_bytecode_ratio']:.2f} | {row['tracer_ms']:.0f} "
            f"| {row['models_ms']:.0f} ({row['deferred_models']}) "
            f"| {row['cold_ratio']:.2f} | {row['zip_bytes'] / 1024:.0f} |\n"
        )
    out.write(f"\nDependency layer: {layer_bytes / 1024 / 1024:.1f} MiB — {layer_note}.\n")
    heavy = [row for row in results if row.get("heaviest")]
    if heavy:
        out.write(
            "\nWhere the import time of the functions over the target goes "
            "(self time per package, ms, `python -X importtime` after boto3):\n\n"
        )
        for row in heavy:
            listed = ", ".join(f"{name} {ms:.0f}" for name, ms in row["heaviest"])
            out.write(f"- {row['function']}: {listed}\n")
    out.write("\n")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument(
        "--only", default="", help="comma-separated function names to measure (default: every function)"
    )
    args = parser.parse_args(argv)
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    unknown = only - {fn.name for fn in TOPOLOGY.functions}
    if unknown:
        parser.error(f"unknown functions: {', '.join(sorted(unknown))}")
    results = run(args.repeat, sys.stdout, only)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
