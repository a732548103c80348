"""``make package``: build every function zip and the dependency layer into ``build/`` without deploying.

::

    python -m infra.package [--runtime python3.13] [--require-bytecode] [--no-bytecode] [--build-dir build]

The same code as ``pulumi up`` (:func:`infra.bundling.build_bundle`): what this writes is
what a deployment uploads. The runtime defaults to the stack setting's default
(``python3.13``; ``pulumi config set runtime ...`` changes a stack's). The layer needs PyPI
(arm64 wheels through ``pip --platform``) the first time, then comes from ``build/layer/``.
Bytecode needs an interpreter of the runtime's Python: this one, ``$OMNI_BYTECODE_PYTHON``
or ``python3.13`` on ``PATH``; without one the artifacts are built without it and a
warning says so (``--require-bytecode``: exit status 2 instead).
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

from infra.bundling import BytecodeUnavailable, build_bundle
from infra.components.common import RUNTIME
from topology import TOPOLOGY

ROOT = Path(__file__).resolve().parent.parent


def _pyc_count(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(name.endswith(".pyc") for name in archive.namelist())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", default=RUNTIME, help=f"Lambda runtime (default {RUNTIME})")
    parser.add_argument("--build-dir", type=Path, default=ROOT / "build")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--require-bytecode", action="store_true", help="fail when it cannot compile")
    group.add_argument("--no-bytecode", action="store_true", help="leave bytecode out")
    args = parser.parse_args(argv)
    try:
        bundle = build_bundle(
            ROOT,
            TOPOLOGY,
            args.build_dir,
            runtime=args.runtime,
            bytecode=not args.no_bytecode,
            require_bytecode=args.require_bytecode,
        )
    except BytecodeUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for note in bundle.notes:
        print(f"warning: {note}", file=sys.stderr)
    for name, artifact in sorted(bundle.functions.items()):
        size = artifact.path.stat().st_size / 1024
        print(f"{artifact.path}  {size:7.0f} KiB  {_pyc_count(artifact.path):4d} .pyc  {name}")
    size = bundle.layer.path.stat().st_size / 1024 / 1024
    print(f"{bundle.layer.path}  {size:5.1f} MiB  {_pyc_count(bundle.layer.path):4d} .pyc  layer")
    print(f"bytecode: {'Python ' + bundle.bytecode if bundle.bytecode else 'none'} ({args.runtime})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
