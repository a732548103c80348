"""Reproducible Lambda artifacts: one small zip per function and one layer of dependencies.

Plain Python (no Pulumi) so it can be tested on its own. The same sources always give
byte-identical zips: entries are sorted, every entry gets the same timestamp
(1980-01-01) and the same permissions, and the caches of the working tree
(``__pycache__``, ``*.pyc``) are left out. Pulumi hashes the zip, so an unchanged
function shows no diff.

Bytecode: Lambda's file system is read-only, so a module without bytecode is compiled
again at every cold start. Both the function zips and the layer therefore carry
``__pycache__/<module>.cpython-3XX.pyc`` compiled for the *runtime's* Python
(``compileall``, unchecked-hash invalidation: the ``.pyc`` holds a hash of its source,
not a timestamp, so it is reproducible and never re-validated at import). Only an
interpreter of that version can write it: :func:`find_compiler` uses this one when it
matches, else ``$OMNI_BYTECODE_PYTHON`` or ``python3.13`` on ``PATH``. Without one the
artifacts are built without bytecode and :attr:`Bundle.notes` says so (or the build
fails when bytecode is required).

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
import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from topology import Function, Topology

#: Python version of the default Lambda runtime (``python3.13``); the layer's wheels must match it.
LAMBDA_PYTHON_VERSION = "3.13"
#: Names an interpreter of the runtime's Python version that compiles the bytecode.
BYTECODE_PYTHON_ENV = "OMNI_BYTECODE_PYTHON"
#: Where Lambda extracts a function's zip and a layer: the paths the bytecode names.
FUNCTION_ROOT = "/var/task"
LAYER_ROOT = "/opt"
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
    #: The Python version the artifacts' bytecode is for; None: they carry none.
    bytecode: str | None = None
    #: What the build wants the operator to know (e.g. why there is no bytecode).
    notes: tuple[str, ...] = field(default=())


class BytecodeUnavailable(RuntimeError):
    """Bytecode is required but no interpreter of the runtime's Python version was found."""


@dataclass(frozen=True)
class Compiler:
    """An interpreter that writes bytecode for ``version`` (``"3.13"``)."""

    executable: str
    version: str

    @property
    def cache_tag(self) -> str:
        """The ``.pyc`` name tag, e.g. ``cpython-313``."""
        return "cpython-" + self.version.replace(".", "")


def python_version_of(runtime: str) -> str:
    """``python3.13`` -> ``3.13``."""
    match = re.fullmatch(r"python(3\.\d+)", runtime)
    if not match:
        raise ValueError(f"{runtime!r} is not a Lambda Python runtime (python3.X)")
    return match.group(1)


def _interpreter_version(executable: str) -> str | None:
    try:
        done = subprocess.run(  # noqa: S603
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def find_compiler(version: str, environ: Mapping[str, str] | None = None) -> Compiler | None:
    """An interpreter of Python ``version``: this one, ``$OMNI_BYTECODE_PYTHON``, or ``python<version>``.

    Each candidate is asked its version (a pyenv shim of a version that is not selected
    exists on ``PATH`` but does not run).
    """
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return Compiler(sys.executable, version)
    environ = os.environ if environ is None else environ
    candidates = [environ.get(BYTECODE_PYTHON_ENV, ""), shutil.which(f"python{version}") or ""]
    for candidate in candidates:
        if candidate and _interpreter_version(candidate) == version:
            return Compiler(candidate, version)
    return None


def compile_tree(compiler: Compiler, tree: Path, deployed_root: str, *, strict: bool = True) -> None:
    """Write ``__pycache__/*.pyc`` next to every module under ``tree`` with ``compiler``.

    Unchecked-hash invalidation (no timestamp in the file) and source paths as Lambda
    sees them (``deployed_root`` + the path under ``tree``): the bytecode depends on the
    sources only. ``strict``: a module that does not compile fails the build (the
    project's code); otherwise it is shipped without bytecode (third-party files such as
    templates or tests in another Python's syntax).
    """
    done = subprocess.run(  # noqa: S603
        [
            compiler.executable,
            "-m",
            "compileall",
            "-q",
            "-j",
            "1",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(tree),
            "-p",
            deployed_root,
            str(tree),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "315532800"},
    )
    if done.returncode != 0 and strict:
        raise RuntimeError(f"compileall failed for {tree}:\n{done.stdout}{done.stderr}")


def bytecode_files(tree: Path, files: Mapping[str, Path], compiler: Compiler) -> dict[str, Path]:
    """The ``.pyc`` entries (zip path -> file under ``tree``) of the modules among ``files``."""
    pyc: dict[str, Path] = {}
    for name in files:
        if not name.endswith(".py"):
            continue
        folder, _, module = name.rpartition("/")
        entry = f"{folder + '/' if folder else ''}__pycache__/{module[:-3]}.{compiler.cache_tag}.pyc"
        path = tree / entry
        if path.is_file():
            pyc[entry] = path
    return pyc


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


def _check_handler(fn: Function, files: Mapping[str, Path]) -> None:
    if handler_module_path(fn) not in files:
        raise FileNotFoundError(
            f"function {fn.name!r}: handler module {handler_module_path(fn)} is not in {fn.source_dir}/"
        )


def stage_sources(files: Mapping[str, Path], staging: Path) -> None:
    """Copy ``files`` (zip path -> file) into ``staging`` at their zip paths."""
    for name, path in files.items():
        dest = staging / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)


def build_function_zip(root: Path, fn: Function, dest: Path, *, compiler: Compiler | None = None) -> Artifact:
    """``fn``'s zip; with ``compiler``, its modules' bytecode for that Python is in it too."""
    return build_function_zips(root, [fn], dest.parent, compiler=compiler, names={fn.name: dest.name})[
        fn.name
    ]


def build_function_zips(
    root: Path,
    functions: Sequence[Function],
    dest_dir: Path,
    *,
    compiler: Compiler | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Artifact]:
    """One zip per function into ``dest_dir`` (``<name>.zip``), the sources compiled once for all."""
    sources = {fn.name: function_files(root, fn) for fn in functions}
    for fn in functions:
        _check_handler(fn, sources[fn.name])
    with tempfile.TemporaryDirectory(prefix="omni-bytecode-") as tmp:
        staging = Path(tmp)
        if compiler is not None:
            union = {name: path for files in sources.values() for name, path in files.items()}
            stage_sources(union, staging)
            compile_tree(compiler, staging, FUNCTION_ROOT)
        artifacts = {}
        for fn in functions:
            files = dict(sources[fn.name])
            if compiler is not None:
                files.update(bytecode_files(staging, files, compiler))
            dest = dest_dir / (names or {}).get(fn.name, f"{fn.name}.zip")
            artifacts[fn.name] = write_zip(files, dest)
        return artifacts


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


def pip_install_command(
    requirements: Sequence[str], target: Path, python_version: str = LAMBDA_PYTHON_VERSION
) -> list[str]:
    """The pip command that installs arm64 wheels for the Lambda Python into ``target``.

    ``--no-compile``: pip would compile with this interpreter, whose version may not be
    the runtime's; :func:`build_layer` compiles with the runtime's.
    """
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
        python_version,
        "--implementation",
        "cp",
        "--target",
        str(target),
        *requirements,
    ]


def pip_install(
    requirements: Sequence[str], target: Path, python_version: str = LAMBDA_PYTHON_VERSION
) -> None:
    """The real installer: runs pip (needs PyPI)."""
    subprocess.run(pip_install_command(requirements, target, python_version), check=True)  # noqa: S603


def pip_installer(python_version: str) -> LayerInstaller:
    """:func:`pip_install` for the wheels of Python ``python_version``."""
    return functools.partial(pip_install, python_version=python_version)


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


def layer_key(
    requirements: Iterable[str], python_version: str = LAMBDA_PYTHON_VERSION, *, bytecode: bool = False
) -> str:
    """Identifies the layer's content: the requirements, the platform they are built for, bytecode or not."""
    spec: dict[str, object] = {
        "requirements": sorted(requirements),
        "platform": LAMBDA_PLATFORM,
        "python": python_version,
        "implementation": "cp",
    }
    if bytecode:
        spec["bytecode"] = "unchecked-hash"
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_layer(
    requirements: Sequence[str],
    build_dir: Path,
    installer: LayerInstaller | None = None,
    *,
    python_version: str = LAMBDA_PYTHON_VERSION,
    compiler: Compiler | None = None,
) -> Artifact:
    """The layer zip for ``requirements``, installed only when no cached zip matches them.

    With ``compiler`` (of ``python_version``), the layer's modules carry their bytecode.
    """
    if compiler is not None and compiler.version != python_version:
        raise ValueError(f"bytecode of Python {compiler.version} in a layer for Python {python_version}")
    key = layer_key(requirements, python_version, bytecode=compiler is not None)
    dest = build_dir / "layer" / f"{key}.zip"
    if dest.is_file():
        return _file_artifact(dest)
    staging = build_dir / "layer" / key
    if staging.exists():
        shutil.rmtree(staging)
    (installer or pip_installer(python_version))(list(requirements), staging / "python")
    prune_runtime_distributions(staging / "python")
    files = tree_files(staging)
    if compiler is not None:
        compile_tree(compiler, staging, LAYER_ROOT, strict=False)
        files.update(bytecode_files(staging, files, compiler))
    # The zip is written last and atomically, so a failed install leaves no cache behind.
    return write_zip(files, dest)


def no_bytecode_note(version: str) -> str:
    return (
        f"no bytecode in the artifacts: no Python {version} here to compile it (this is Python "
        f"{sys.version_info.major}.{sys.version_info.minor}). Every cold start will compile every module. "
        f"Build from a machine or CI image with Python {version}, or set {BYTECODE_PYTHON_ENV} to "
        f"a python{version} (see README, Deploy)."
    )


def build_bundle(
    root: Path,
    topology: Topology,
    build_dir: Path,
    *,
    installer: LayerInstaller | None = None,
    runtime: str = f"python{LAMBDA_PYTHON_VERSION}",
    bytecode: bool = True,
    require_bytecode: bool = False,
    compiler: Compiler | None = None,
) -> Bundle:
    """Zip every function of ``topology`` and build (or reuse) the dependency layer.

    ``runtime`` (``python3.13``) decides the layer's wheels and the bytecode's version.
    ``bytecode``: compile when an interpreter of that version is found (:func:`find_compiler`,
    or ``compiler``); ``require_bytecode``: fail (:class:`BytecodeUnavailable`) when none is.
    """
    version = python_version_of(runtime)
    notes: list[str] = []
    if bytecode or require_bytecode:
        compiler = compiler or find_compiler(version)
        if compiler is None:
            if require_bytecode:
                raise BytecodeUnavailable(no_bytecode_note(version))
            notes.append(no_bytecode_note(version))
        elif compiler.version != version:
            raise ValueError(f"{compiler.executable} is Python {compiler.version}, the runtime is {runtime}")
    else:
        compiler = None
    functions = build_function_zips(root, topology.functions, build_dir / "functions", compiler=compiler)
    layer = build_layer(
        runtime_dependencies(root / "pyproject.toml"),
        build_dir,
        installer,
        python_version=version,
        compiler=compiler,
    )
    return Bundle(
        functions=functions, layer=layer, bytecode=compiler.version if compiler else None, notes=tuple(notes)
    )
