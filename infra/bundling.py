"""Reproducible Lambda artifacts: one small zip per function and one layer of dependencies.

Plain Python (no Pulumi) so it can be tested on its own. The same sources always give
byte-identical zips: entries are sorted, every entry gets the same timestamp
(1980-01-01) and the same permissions, and caches (``__pycache__``, ``*.pyc``) are
left out. Pulumi hashes the zip, so an unchanged function shows no diff.

* A function's zip holds its ``source_dir`` folder, ``functions/__init__.py`` and the
  project's ``shared/`` package, at the same paths as in the repository, so the
  handler string of the topology (``functions.webchat.handler.handler``) works as is.
  Nothing else: the deploy declaration (``topology/``), the Pulumi program (``infra/``),
  the local runtime (``omni/``) and the benchmarks (``bench/``) never reach a function
  (a function learns physical names from the environment variables named in
  ``shared/platform/settings.py``); ``tests/infra/test_infra_bundling.py`` checks the
  project's zips.
* The layer holds the third-party runtime dependencies: ``[project].dependencies`` of
  ``pyproject.toml`` minus boto3 (the Lambda runtime has it), installed as arm64 wheels
  for the Lambda Python version under ``python/``. Installing needs PyPI, so the layer
  is cached under ``build/layer/`` by a hash of everything that goes into it and is only
  installed again when that changes.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from topology import Function, Topology

#: Python version of the Lambda runtime (``python3.13``); the layer's wheels must match it.
LAMBDA_PYTHON_VERSION = "3.13"
#: pip platform tag of arm64 Lambda (Amazon Linux 2023, glibc 2.34 >= manylinux2014).
LAMBDA_PLATFORM = "manylinux2014_aarch64"
#: Distributions the Lambda runtime already provides; not bundled.
PROVIDED_BY_RUNTIME = frozenset({"boto3"})
#: What the Lambda Python runtime ships with boto3. A dependency that pulls one in
#: (aws-xray-sdk needs botocore) must not put a second copy in the layer: it would be
#: dead weight, and ahead of the runtime's on ``sys.path``, with a version boto3 was not
#: released with.
RUNTIME_DISTRIBUTIONS = frozenset(
    {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
)

#: Every zip entry gets this timestamp: the earliest a zip can store.
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)
#: Every zip entry gets these permissions (regular file, rw-r--r--).
ZIP_FILE_MODE = 0o100644
_ZIP_UNIX = 3

_EXCLUDED_DIRS = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
_EXCLUDED_NAMES = frozenset({".DS_Store"})

#: Installs ``requirements`` into ``target`` (the ``python/`` folder of the layer).
LayerInstaller = Callable[[Sequence[str], Path], None]


@dataclass(frozen=True)
class Artifact:
    """A zip on disk and its SHA-256."""

    path: Path
    sha256: str

    @property
    def base64_sha256(self) -> str:
        """The hash as Lambda reports it (``CodeSha256``): base64 of the raw digest."""
        return base64.b64encode(bytes.fromhex(self.sha256)).decode("ascii")


@dataclass(frozen=True)
class Bundle:
    """Everything the functions need: one zip per function and the dependency layer."""

    functions: Mapping[str, Artifact]
    layer: Artifact


# --------------------------------------------------------------------------- #
# Reproducible zips
# --------------------------------------------------------------------------- #


def _included(path: Path) -> bool:
    return (
        not any(part in _EXCLUDED_DIRS for part in path.parts)
        and not path.name.endswith(_EXCLUDED_SUFFIXES)
        and path.name not in _EXCLUDED_NAMES
    )


def tree_files(base: Path, arc_prefix: str = "") -> dict[str, Path]:
    """Every file under ``base`` (caches left out), keyed by its path in the zip."""
    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder")
    files: dict[str, Path] = {}
    for path in base.rglob("*"):
        relative = path.relative_to(base)
        if path.is_file() and _included(relative):
            files[f"{arc_prefix}{relative.as_posix()}"] = path
    return files


def zip_bytes(files: Mapping[str, Path]) -> bytes:
    """A zip of ``files`` (zip path -> file) that depends on their contents only."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.create_system = _ZIP_UNIX
            info.external_attr = ZIP_FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name].read_bytes(), compresslevel=9)
    return buffer.getvalue()


def _write_if_changed(data: bytes, dest: Path) -> None:
    """Write atomically, and not at all when the file already holds ``data``."""
    if dest.is_file() and dest.read_bytes() == data:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(f".{dest.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, dest)


def write_zip(files: Mapping[str, Path], dest: Path) -> Artifact:
    data = zip_bytes(files)
    _write_if_changed(data, dest)
    return Artifact(path=dest, sha256=hashlib.sha256(data).hexdigest())


def _file_artifact(path: Path) -> Artifact:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return Artifact(path=path, sha256=digest.hexdigest())


# --------------------------------------------------------------------------- #
# Function zips
# --------------------------------------------------------------------------- #


def handler_module_path(fn: Function) -> str:
    """Path of the handler's module inside the zip, e.g. ``functions/webchat/handler.py``."""
    return fn.module.replace(".", "/") + ".py"


def function_files(root: Path, fn: Function) -> dict[str, Path]:
    """What goes into ``fn``'s zip: its folder, ``functions/__init__.py``, ``shared/``."""
    source_dir = fn.source_dir.strip("/")
    files = tree_files(root / source_dir, f"{source_dir}/")
    files["functions/__init__.py"] = root / "functions" / "__init__.py"
    files.update(tree_files(root / "shared", "shared/"))
    for name, path in files.items():
        if not path.is_file():
            raise FileNotFoundError(f"{fn.name}: {name} is missing ({path})")
    return files


def build_function_zip(root: Path, fn: Function, dest: Path) -> Artifact:
    files = function_files(root, fn)
    if handler_module_path(fn) not in files:
        raise FileNotFoundError(
            f"function {fn.name!r}: handler module {handler_module_path(fn)} is not in {fn.source_dir}/"
        )
    return write_zip(files, dest)


# --------------------------------------------------------------------------- #
# The dependency layer
# --------------------------------------------------------------------------- #


def distribution_name(requirement: str) -> str:
    """The normalised distribution name of a PEP 508 requirement (``Foo_Bar[x]>=1`` -> ``foo-bar``)."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_dependencies(pyproject: Path) -> list[str]:
    """``[project].dependencies`` of ``pyproject`` minus what the Lambda runtime provides."""
    with pyproject.open("rb") as handle:
        project = tomllib.load(handle)["project"]
    return [req for req in project["dependencies"] if distribution_name(req) not in PROVIDED_BY_RUNTIME]


def pip_install_command(requirements: Sequence[str], target: Path) -> list[str]:
    """The pip command that installs arm64 wheels for the Lambda Python into ``target``."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",
        "--platform",
        LAMBDA_PLATFORM,
        "--only-binary=:all:",
        "--python-version",
        LAMBDA_PYTHON_VERSION,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *requirements,
    ]


def pip_install(requirements: Sequence[str], target: Path) -> None:
    """The real installer: runs pip (needs PyPI)."""
    subprocess.run(pip_install_command(requirements, target), check=True)  # noqa: S603


def prune_runtime_distributions(target: Path) -> list[str]:
    """Remove from an installed ``target`` the distributions of :data:`RUNTIME_DISTRIBUTIONS`.

    Each is removed by the files its ``RECORD`` lists (only those inside ``target``).
    Returns the names removed.
    """
    removed: list[str] = []
    root = target.resolve()
    for info in sorted(target.glob("*.dist-info")):
        name = distribution_name(info.name[: -len(".dist-info")].rsplit("-", 1)[0])
        if name not in RUNTIME_DISTRIBUTIONS:
            continue
        record = info / "RECORD"
        listed = record.read_text(encoding="utf-8").splitlines() if record.is_file() else []
        folders: set[Path] = set()
        for line in listed:
            path = (target / line.split(",", 1)[0]).resolve()
            if path.is_relative_to(root) and path.is_file():
                path.unlink()
                folders.update(p for p in path.parents if p != root and p.is_relative_to(root))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        if info.exists():
            shutil.rmtree(info)
        removed.append(name)
    return removed


def layer_key(requirements: Iterable[str]) -> str:
    """Identifies the layer's content: the requirements and the platform they are built for."""
    spec = {
        "requirements": sorted(requirements),
        "platform": LAMBDA_PLATFORM,
        "python": LAMBDA_PYTHON_VERSION,
        "implementation": "cp",
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_layer(
    requirements: Sequence[str], build_dir: Path, installer: LayerInstaller = pip_install
) -> Artifact:
    """The layer zip for ``requirements``, installed only when no cached zip matches them."""
    key = layer_key(requirements)
    dest = build_dir / "layer" / f"{key}.zip"
    if dest.is_file():
        return _file_artifact(dest)
    staging = build_dir / "layer" / key
    if staging.exists():
        shutil.rmtree(staging)
    installer(list(requirements), staging / "python")
    prune_runtime_distributions(staging / "python")
    # The zip is written last and atomically, so a failed install leaves no cache behind.
    return write_zip(tree_files(staging), dest)


def build_bundle(
    root: Path,
    topology: Topology,
    build_dir: Path,
    *,
    installer: LayerInstaller = pip_install,
) -> Bundle:
    """Zip every function of ``topology`` and build (or reuse) the dependency layer."""
    functions = {
        fn.name: build_function_zip(root, fn, build_dir / "functions" / f"{fn.name}.zip")
        for fn in topology.functions
    }
    layer = build_layer(runtime_dependencies(root / "pyproject.toml"), build_dir, installer)
    return Bundle(functions=functions, layer=layer)
