"""Packaging (infra/bundling.py): reproducible function zips and the cached dependency layer.

Plain tests: no Pulumi, no pip, no network. A fake repository in a temporary folder
stands in for the project where the test needs files it can change.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import marshal
import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra import bundling
from tests.helpers import REPO_ROOT
from topology import TOPOLOGY, Function

FN = Function(
    name="demo",
    handler="functions.demo.handler.handler",
    source_dir="functions/demo",
    description="A function of the fake repository.",
    routes=(),
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    files = {
        "functions/__init__.py": "",
        "functions/demo/__init__.py": "",
        "functions/demo/handler.py": "def handler(event, context):\n    return event\n",
        "functions/demo/templates/reply.txt": "Thanks!\n",
        "functions/demo/__pycache__/handler.cpython-313.pyc": "junk",
        "functions/other/handler.py": "# another function: not in demo's zip\n",
        "shared/__init__.py": "",
        "shared/contracts/events.py": "EVENTS = 1\n",
        "shared/repositories/__init__.py": "",
        "shared/repositories/tables.py": "TABLES = 1\n",
        "shared/stale.pyc": "junk",
        "shared/__pycache__/events.cpython-311.pyc": "junk",
        "omni/cli.py": "# not Lambda code\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


# --------------------------------------------------------------------------- #
# Function zips
# --------------------------------------------------------------------------- #


def test_function_zip_holds_its_folder_functions_init_and_shared_only(
    fake_repo: Path, tmp_path: Path
) -> None:
    artifact = bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip")
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
    assert names == [
        "functions/__init__.py",
        "functions/demo/__init__.py",
        "functions/demo/handler.py",
        "functions/demo/templates/reply.txt",
        "shared/__init__.py",
        "shared/contracts/events.py",
        "shared/repositories/__init__.py",
        "shared/repositories/tables.py",
    ]


def test_zip_entries_have_fixed_timestamps_and_permissions(fake_repo: Path, tmp_path: Path) -> None:
    artifact = bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip")
    with zipfile.ZipFile(artifact.path) as archive:
        infos = archive.infolist()
        assert [i.filename for i in infos] == sorted(i.filename for i in infos)
        for info in infos:
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
            assert info.external_attr >> 16 == 0o100644
            assert info.create_system == 3
        assert (
            archive.read("functions/demo/handler.py")
            == (fake_repo / "functions/demo/handler.py").read_bytes()
        )


def test_same_sources_give_byte_identical_zips(fake_repo: Path, tmp_path: Path) -> None:
    first = bundling.build_function_zip(fake_repo, FN, tmp_path / "a" / "demo.zip")
    # Touch, chmod and recreate files: none of it is content, so none of it may show.
    handler = fake_repo / "functions/demo/handler.py"
    os.utime(handler, (1_900_000_000, 1_900_000_000))
    (fake_repo / "shared/contracts/events.py").chmod(0o755)
    text = (fake_repo / "shared/repositories/tables.py").read_text()
    (fake_repo / "shared/repositories/tables.py").unlink()
    (fake_repo / "shared/repositories/tables.py").write_text(text)
    (fake_repo / "functions/demo/__pycache__/new.cpython-313.pyc").write_text("more junk")
    second = bundling.build_function_zip(fake_repo, FN, tmp_path / "b" / "demo.zip")
    assert first.sha256 == second.sha256 == sha256(first.path) == sha256(second.path)
    assert first.path.read_bytes() == second.path.read_bytes()

    handler.write_text(handler.read_text() + "# changed\n")
    third = bundling.build_function_zip(fake_repo, FN, tmp_path / "c" / "demo.zip")
    assert third.sha256 != first.sha256


def test_unchanged_zip_is_not_rewritten(fake_repo: Path, tmp_path: Path) -> None:
    dest = tmp_path / "demo.zip"
    bundling.build_function_zip(fake_repo, FN, dest)
    os.utime(dest, (1_000_000_000, 1_000_000_000))
    bundling.build_function_zip(fake_repo, FN, dest)
    assert dest.stat().st_mtime == 1_000_000_000


def test_lambda_code_sha256_is_base64_of_the_digest(fake_repo: Path, tmp_path: Path) -> None:
    artifact = bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip")
    assert (
        artifact.base64_sha256
        == base64.b64encode(hashlib.sha256(artifact.path.read_bytes()).digest()).decode()
    )


def test_a_missing_handler_module_fails_the_build(fake_repo: Path, tmp_path: Path) -> None:
    (fake_repo / "functions/demo/handler.py").unlink()
    with pytest.raises(FileNotFoundError, match=r"functions/demo/handler\.py"):
        bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip")


def test_every_declared_function_of_the_project_is_zipped_with_its_handler(tmp_path: Path) -> None:
    for fn in TOPOLOGY.functions:
        artifact = bundling.build_function_zip(REPO_ROOT, fn, tmp_path / f"{fn.name}.zip")
        with zipfile.ZipFile(artifact.path) as archive:
            names = set(archive.namelist())
        assert f"{fn.source_dir}/__init__.py" in names
        assert bundling.handler_module_path(fn) in names
        assert {"functions/__init__.py", "shared/__init__.py", "shared/contracts/events.py"} <= names
        assert not any("__pycache__" in name or name.endswith(".pyc") for name in names)
        # Only its own function folder.
        assert all(
            n.startswith((f"{fn.source_dir}/", "shared/")) or n == "functions/__init__.py" for n in names
        )


#: Packages that only deploy (topology, infra), run locally (omni) or measure (bench): never in a zip.
_NOT_LAMBDA_CODE = ("topology", "infra", "omni", "bench")


def test_no_function_zip_of_the_project_carries_the_deploy_declaration(tmp_path: Path) -> None:
    """Lambda code learns physical names from its environment: the topology stays out of every zip
    (as a package of its own, or as a module of ``shared/`` or ``functions/``)."""
    bundle = bundling.build_bundle(REPO_ROOT, TOPOLOGY, tmp_path, installer=FakeInstaller())
    assert set(bundle.functions) == {fn.name for fn in TOPOLOGY.functions}
    for name, artifact in bundle.functions.items():
        with zipfile.ZipFile(artifact.path) as archive:
            entries = archive.namelist()
        assert entries
        offending = [
            entry
            for entry in entries
            if any(part.removesuffix(".py") in _NOT_LAMBDA_CODE for part in entry.split("/"))
        ]
        assert offending == [], f"{name}: {offending}"


#: Marker environment of the Lambda runtime, to follow the dependencies it gets installed.
_LAMBDA_MARKERS = {
    "python_version": "3.13",
    "python_full_version": "3.13.0",
    "platform_machine": "aarch64",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
}


def _shipped_distributions(requirements: Iterable[str]) -> set[str]:
    """The distributions ``requirements`` install, with their dependencies (as installed here)."""
    shipped: set[str] = set()
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in shipped:
            continue
        shipped.add(name)
        for raw in importlib.metadata.distribution(name).requires or []:
            dependency = Requirement(raw)
            extras = requirement.extras or {""}
            if dependency.marker is None or any(
                dependency.marker.evaluate({**_LAMBDA_MARKERS, "extra": extra}) for extra in extras
            ):
                pending.append(dependency)
    return shipped


def _imported_top_level_names(tree: ast.AST) -> Iterator[str]:
    """Absolute imports, except those only type checkers see (``if TYPE_CHECKING:``)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_lambda_code_imports_only_what_the_runtime_and_the_layer_provide(tmp_path: Path) -> None:
    """A module imported by Lambda code but missing from the layer fails only in the cloud: catch it here."""
    shipped = _shipped_distributions([*bundling.runtime_dependencies(REPO_ROOT / "pyproject.toml"), "boto3"])
    importable = {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(d) in shipped for d in distributions)
    }
    allowed = set(sys.stdlib_module_names) | {"functions", "shared"} | importable
    for fn in TOPOLOGY.functions:
        artifact = bundling.build_function_zip(REPO_ROOT, fn, tmp_path / f"{fn.name}.zip")
        with zipfile.ZipFile(artifact.path) as archive:
            for name in archive.namelist():
                if name.endswith(".py"):
                    tree = ast.parse(archive.read(name), filename=name)
                    unknown = set(_imported_top_level_names(tree)) - allowed
                    assert not unknown, f"{fn.name}: {name} imports {sorted(unknown)}, which Lambda lacks"


# --------------------------------------------------------------------------- #
# The dependency layer
# --------------------------------------------------------------------------- #


def test_runtime_dependencies_are_the_project_dependencies_minus_boto3() -> None:
    with (REPO_ROOT / "pyproject.toml").open("rb") as handle:
        declared = tomllib.load(handle)["project"]["dependencies"]
    deps = bundling.runtime_dependencies(REPO_ROOT / "pyproject.toml")
    assert deps == [d for d in declared if not d.lower().replace(" ", "").startswith("boto3")]
    assert len(deps) == len(declared) - 1


def test_boto3_is_recognised_however_it_is_spelled(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\ndependencies = ["Boto3 >= 1.35", "boto3[crt]", "boto3-stubs", "PyJWT>=2"]\n'
    )
    assert bundling.runtime_dependencies(pyproject) == ["boto3-stubs", "PyJWT>=2"]


def test_pip_command_installs_arm64_wheels_for_the_lambda_python(tmp_path: Path) -> None:
    command = bundling.pip_install_command(
        ["pydantic>=2.7,<3", "pyjwt>=2.8,<3"], tmp_path / "layer" / "python"
    )
    assert command[1:4] == ["-m", "pip", "install"]
    joined = " ".join(command)
    assert "--platform manylinux2014_aarch64" in joined
    assert "--only-binary=:all:" in command
    assert "--python-version 3.13" in joined
    assert "--implementation cp" in joined
    assert f"--target {tmp_path / 'layer' / 'python'}" in joined
    assert command[-2:] == ["pydantic>=2.7,<3", "pyjwt>=2.8,<3"]


class FakeInstaller:
    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Path]] = []

    def __call__(self, requirements: Sequence[str], target: Path) -> None:
        self.calls.append((list(requirements), target))
        (target / "dep").mkdir(parents=True)
        (target / "dep" / "__init__.py").write_text(f"REQUIREMENTS = {sorted(requirements)!r}\n")
        (target / "dep" / "__pycache__").mkdir()
        (target / "dep" / "__pycache__" / "__init__.cpython-313.pyc").write_text("junk")


def test_layer_is_built_once_then_reused_from_the_cache(tmp_path: Path) -> None:
    installer = FakeInstaller()
    first = bundling.build_layer(["pydantic>=2.7,<3"], tmp_path, installer)
    assert len(installer.calls) == 1
    assert installer.calls[0][1].name == "python"
    with zipfile.ZipFile(first.path) as archive:
        assert archive.namelist() == ["python/dep/__init__.py"]
    again = bundling.build_layer(["pydantic>=2.7,<3"], tmp_path, installer)
    assert len(installer.calls) == 1
    assert again == first
    # Other requirements, other layer.
    other = bundling.build_layer(["pydantic>=2.8,<3"], tmp_path, installer)
    assert len(installer.calls) == 2
    assert other.path != first.path
    assert other.sha256 != first.sha256


def test_a_failed_install_leaves_no_cached_layer(tmp_path: Path) -> None:
    def broken(requirements: Sequence[str], target: Path) -> None:
        target.mkdir(parents=True)
        (target / "half.py").write_text("")
        raise RuntimeError("PyPI unreachable")

    with pytest.raises(RuntimeError):
        bundling.build_layer(["pyjwt"], tmp_path, broken)
    installer = FakeInstaller()
    artifact = bundling.build_layer(["pyjwt"], tmp_path, installer)
    assert len(installer.calls) == 1
    with zipfile.ZipFile(artifact.path) as archive:
        assert "python/half.py" not in archive.namelist()


def test_layer_zips_of_the_same_install_are_identical(tmp_path: Path) -> None:
    a = bundling.build_layer(["pyjwt"], tmp_path / "a", FakeInstaller())
    b = bundling.build_layer(["pyjwt"], tmp_path / "b", FakeInstaller())
    assert a.sha256 == b.sha256
    assert a.path.read_bytes() == b.path.read_bytes()


# --------------------------------------------------------------------------- #
# Bytecode (compiled here with this interpreter's version: the same path as for the runtime's)
# --------------------------------------------------------------------------- #

LOCAL_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
LOCAL = bundling.Compiler(sys.executable, LOCAL_VERSION)
TAG = sys.implementation.cache_tag


def test_find_compiler_takes_this_interpreter_when_its_version_is_the_runtimes() -> None:
    assert bundling.find_compiler(LOCAL_VERSION) == LOCAL
    assert LOCAL.cache_tag == TAG


def test_find_compiler_asks_each_candidate_its_version(tmp_path: Path) -> None:
    # A candidate that does not run (a pyenv shim of an unselected version) or runs another version: none.
    assert bundling.find_compiler("3.99", {bundling.BYTECODE_PYTHON_ENV: str(tmp_path / "missing")}) is None
    assert bundling.find_compiler("3.99", {bundling.BYTECODE_PYTHON_ENV: sys.executable}) is None
    # Named by the environment variable and of the wanted version: taken.
    fake = tmp_path / "python3.99"
    fake.write_text("#!/bin/sh\necho 3.99\n")
    fake.chmod(0o755)
    found = bundling.find_compiler("3.99", {bundling.BYTECODE_PYTHON_ENV: str(fake)})
    assert found == bundling.Compiler(str(fake), "3.99")


def test_runtime_names_its_python_version() -> None:
    assert bundling.python_version_of("python3.13") == "3.13"
    with pytest.raises(ValueError, match="not a Lambda Python runtime"):
        bundling.python_version_of("nodejs20.x")


def _pyc_flags(data: bytes) -> int:
    return int.from_bytes(data[4:8], "little")


def test_function_zip_carries_unchecked_hash_bytecode_of_every_module(
    fake_repo: Path, tmp_path: Path
) -> None:
    artifact = bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip", compiler=LOCAL)
    with zipfile.ZipFile(artifact.path) as archive:
        names = archive.namelist()
        modules = [n for n in names if n.endswith(".py")]
        pyc = [n for n in names if n.endswith(".pyc")]
        assert sorted(pyc) == sorted(
            f"{n.rpartition('/')[0]}/__pycache__/{n.rpartition('/')[2][:-3]}.{TAG}.pyc" for n in modules
        )
        data = archive.read(f"functions/demo/__pycache__/handler.{TAG}.pyc")
        # Hash-based, source not checked (PEP 552 flags 0b01): no timestamp, no stat at import.
        assert _pyc_flags(data) == 0b01
        assert data[:4] == importlib.util.MAGIC_NUMBER
        code = marshal.loads(data[16:])
        # The source path as Lambda sees it, not the build machine's.
        assert code.co_filename == "/var/task/functions/demo/handler.py"
        # The working tree's stale caches stay out.
        assert "shared/stale.pyc" not in names


def test_bytecode_is_what_the_interpreter_imports_from_the_extracted_zip(
    fake_repo: Path, tmp_path: Path
) -> None:
    (fake_repo / "functions/demo/handler.py").write_text("import sys\nLOADED_FROM = __spec__.cached\n")
    artifact = bundling.build_function_zip(fake_repo, FN, tmp_path / "demo.zip", compiler=LOCAL)
    task = tmp_path / "task"
    with zipfile.ZipFile(artifact.path) as archive:
        archive.extractall(task)
    # Unchecked hash: the shipped bytecode is run without looking at the source again (as
    # Lambda would: no stat, no recompile), so a changed source does not show.
    (task / "functions/demo/handler.py").write_text("LOADED_FROM = 'source'\n")
    probe = "import functions.demo.handler as m; print(m.LOADED_FROM)"
    env = {**os.environ, "PYTHONPATH": str(task), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=task, check=True
    )
    assert done.stdout.strip() == str(task / f"functions/demo/__pycache__/handler.{TAG}.pyc")


def test_zips_with_bytecode_are_byte_identical_across_builds(fake_repo: Path, tmp_path: Path) -> None:
    first = bundling.build_function_zip(fake_repo, FN, tmp_path / "a" / "demo.zip", compiler=LOCAL)
    os.utime(fake_repo / "functions/demo/handler.py", (1_900_000_000, 1_900_000_000))
    second = bundling.build_function_zip(fake_repo, FN, tmp_path / "b" / "demo.zip", compiler=LOCAL)
    assert first.path.read_bytes() == second.path.read_bytes()


def test_every_function_zip_of_the_project_carries_bytecode(tmp_path: Path) -> None:
    artifacts = bundling.build_function_zips(REPO_ROOT, TOPOLOGY.functions, tmp_path, compiler=LOCAL)
    for fn in TOPOLOGY.functions:
        with zipfile.ZipFile(artifacts[fn.name].path) as archive:
            names = set(archive.namelist())
        handler = bundling.handler_module_path(fn)
        folder, _, module = handler.rpartition("/")
        assert f"{folder}/__pycache__/{module[:-3]}.{TAG}.pyc" in names
        modules = {n for n in names if n.endswith(".py")}
        assert len([n for n in names if n.endswith(".pyc")]) == len(modules)


def test_layer_carries_bytecode_compiled_for_its_python(tmp_path: Path) -> None:
    installer = FakeInstaller()
    artifact = bundling.build_layer(
        ["pyjwt"], tmp_path, installer, python_version=LOCAL_VERSION, compiler=LOCAL
    )
    with zipfile.ZipFile(artifact.path) as archive:
        assert archive.namelist() == ["python/dep/__init__.py", f"python/dep/__pycache__/__init__.{TAG}.pyc"]
        code = marshal.loads(archive.read(f"python/dep/__pycache__/__init__.{TAG}.pyc")[16:])
        assert code.co_filename == "/opt/python/dep/__init__.py"
    # A layer without bytecode is another cache entry, and the same install gives the same zip.
    plain = bundling.build_layer(["pyjwt"], tmp_path, FakeInstaller(), python_version=LOCAL_VERSION)
    assert plain.path != artifact.path
    again = bundling.build_layer(
        ["pyjwt"], tmp_path / "again", FakeInstaller(), python_version=LOCAL_VERSION, compiler=LOCAL
    )
    assert again.path.read_bytes() == artifact.path.read_bytes()


def test_pip_installs_the_wheels_of_the_runtimes_python(tmp_path: Path) -> None:
    command = bundling.pip_install_command(["pyjwt"], tmp_path, "3.12")
    assert "--python-version 3.12" in " ".join(command)
    assert "--no-compile" in command


def _fake_topology_repo(fake_repo: Path) -> Path:
    (fake_repo / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["boto3", "pyjwt"]\n')
    return fake_repo


def test_bundle_for_a_runtime_this_machine_can_compile_for_has_bytecode(
    fake_repo: Path, tmp_path: Path
) -> None:
    root = _fake_topology_repo(fake_repo)
    topology = dataclasses.replace(TOPOLOGY, functions=(FN,))
    bundle = bundling.build_bundle(
        root, topology, tmp_path / "build", installer=FakeInstaller(), runtime=f"python{LOCAL_VERSION}"
    )
    assert bundle.bytecode == LOCAL_VERSION
    assert bundle.notes == ()
    with zipfile.ZipFile(bundle.functions["demo"].path) as archive:
        assert f"functions/demo/__pycache__/handler.{TAG}.pyc" in archive.namelist()
    with zipfile.ZipFile(bundle.layer.path) as archive:
        assert f"python/dep/__pycache__/__init__.{TAG}.pyc" in archive.namelist()


def test_bundle_without_an_interpreter_of_the_runtimes_python_says_so(
    fake_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _fake_topology_repo(fake_repo)
    topology = dataclasses.replace(TOPOLOGY, functions=(FN,))
    monkeypatch.delenv(bundling.BYTECODE_PYTHON_ENV, raising=False)
    bundle = bundling.build_bundle(
        root, topology, tmp_path / "build", installer=FakeInstaller(), runtime="python3.99"
    )
    assert bundle.bytecode is None
    assert len(bundle.notes) == 1
    assert "no bytecode" in bundle.notes[0]
    assert "Python 3.99" in bundle.notes[0]
    with zipfile.ZipFile(bundle.functions["demo"].path) as archive:
        assert not any(name.endswith(".pyc") for name in archive.namelist())
    with pytest.raises(bundling.BytecodeUnavailable, match=r"Python 3\.99"):
        bundling.build_bundle(
            root,
            topology,
            tmp_path / "build2",
            installer=FakeInstaller(),
            runtime="python3.99",
            require_bytecode=True,
        )
