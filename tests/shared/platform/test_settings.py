"""Every environment variable is named once (shared/platform/settings.py), and the topology
sets, for each function, exactly the variables its code reads.

The code side is read statically: each function's handler module and everything it imports
from ``functions``/``shared`` (transitively), and in those modules every ``settings.NAME``.
"""

from __future__ import annotations

import ast
import dataclasses
from functools import cache
from pathlib import Path

import pytest

from shared.platform import settings
from tests.helpers import REPO_ROOT
from topology import TOPOLOGY, Function, function_environment

ROOT = REPO_ROOT
LAMBDA_PACKAGES = ("shared", "functions")


def _module_path(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def _parse(module: str) -> ast.Module | None:
    path = _module_path(module)
    return ast.parse(path.read_text(), str(path)) if path else None


#: The composition root imports every repository; a function reads only what the builders it calls build.
BOOTSTRAP = "shared.bootstrap"


@cache
def _builder_modules() -> dict[str, frozenset[str]]:
    """Per builder of the composition root: the modules of what it builds, and of the builders it calls."""
    tree = _parse(BOOTSTRAP)
    assert tree is not None
    imported = {
        alias.asname or alias.name: node.module
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module
        for alias in node.names
    }
    builders = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    names = {name: {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} for name, fn in builders.items()}

    def modules(name: str, seen: frozenset[str]) -> set[str]:
        found = {imported[n] for n in names[name] if n in imported}
        for other in names[name] & set(builders) - seen - {name}:
            found |= modules(other, seen | {name})
        return found

    return {name: frozenset(modules(name, frozenset())) for name in builders}


def _executed(tree: ast.AST) -> list[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:`` (imports for annotations only,
    never executed)."""
    nodes: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        nodes.append(node)
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            todo += node.orelse
            continue
        todo += ast.iter_child_nodes(node)
    return nodes


def _imports(module: str) -> set[str]:
    """The Lambda-code modules ``module`` imports (at any depth of its body); of the composition
    root, only the modules of the builders ``module`` calls (``bootstrap.<builder>``)."""
    tree = _parse(module)
    if module == BOOTSTRAP or tree is None:
        return set()
    found: set[str] = set()
    for node in _executed(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "bootstrap":
            found |= _builder_modules().get(node.attr, frozenset())
    return {name for name in found if name.split(".")[0] in LAMBDA_PACKAGES and _module_path(name)}


def _closure(module: str) -> set[str]:
    seen: set[str] = set()
    todo = [module]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        todo += _imports(current)
    return seen


def _settings_read(module: str) -> set[str]:
    """The settings constants ``module`` names (``settings.X`` or ``from ...settings import X``)."""
    tree = _parse(module)
    names: set[str] = set()
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "settings":
            names.add(node.attr)
        elif isinstance(node, ast.ImportFrom) and node.module == "shared.platform.settings":
            names |= {alias.name for alias in node.names}
    return {getattr(settings, name) for name in names if name.isupper()}


#: Variables a function's import closure names but the function never reads: the conversation
#: repository builds its customer repository on the first call of a method that opens or
#: closes a conversation, which the KPI function never calls (it has no grant on the customers
#: table; delivery-status has one: a bounce marks the address undeliverable).
#: Notify imports shared/platform/bus.py for ``send_delayed`` (onto its own queue) and never publishes.
NOT_READ = {
    "kpi": {settings.CUSTOMERS_TABLE},
    "notify": {settings.EVENT_BUS_NAME},
}


def _read_by(fn: Function) -> set[str]:
    return set().union(*(_settings_read(module) for module in _closure(fn.module)))


def _environment(fn: Function) -> dict[str, str]:
    physical = {(g.kind, g.resource): "physical" for f in TOPOLOGY.functions for g in f.grants}
    return function_environment(TOPOLOGY, fn, physical, "test", public_api_url="https://api.example.com")


def test_the_webchat_websocket_endpoint_is_the_topologys_variable() -> None:
    assert TOPOLOGY.websocket_api("webchat").env_var == settings.WEBCHAT_WEBSOCKET_ENDPOINT


def test_every_resource_variable_the_topology_derives_is_declared() -> None:
    derived = {TOPOLOGY.bus.env_var}
    for items in (
        TOPOLOGY.tables,
        TOPOLOGY.queues,
        TOPOLOGY.secrets,
        TOPOLOGY.buckets,
        TOPOLOGY.email_identities,
        TOPOLOGY.websocket_apis,
    ):
        derived |= {item.env_var for item in items}
    granted_queues = {g.resource for f in TOPOLOGY.functions for g in f.grants if g.kind == "queue"}
    # Queues only a function's event source mapping consumes name no variable anybody reads.
    derived -= {q.env_var for q in TOPOLOGY.queues if q.name not in granted_queues}
    assert derived - settings.DECLARED == set()


@pytest.mark.parametrize("fn", TOPOLOGY.functions, ids=lambda fn: fn.name)
def test_every_variable_the_topology_sets_is_declared(fn: Function) -> None:
    assert set(_environment(fn)) - settings.DECLARED == set()


@pytest.mark.parametrize("fn", TOPOLOGY.functions, ids=lambda fn: fn.name)
def test_every_variable_a_function_reads_is_set_for_it_or_optional(fn: Function) -> None:
    required = _read_by(fn) - settings.OPTIONAL - settings.RUNTIME - NOT_READ.get(fn.name, set())
    assert required - set(_environment(fn)) == set()


@pytest.mark.parametrize(("name", "names"), NOT_READ.items())
def test_the_exceptions_are_still_needed(name: str, names: set[str]) -> None:
    fn = TOPOLOGY.function(name)
    assert names <= _read_by(fn) - set(_environment(fn))


def test_the_static_analysis_sees_the_reads() -> None:
    """The check above is not vacuous: the notify function reads its queue, secrets and push endpoint."""
    notify = _read_by(TOPOLOGY.function("notify"))
    assert {
        settings.NOTIFY_QUEUE_URL,
        settings.TWILIO_API_SECRET_ID,
        settings.OUTBOX_TABLE,
        settings.WEBCHAT_WEBSOCKET_ENDPOINT,
    } <= notify


def test_a_missing_grant_is_caught() -> None:
    notify = TOPOLOGY.function("notify")
    stripped = dataclasses.replace(notify, grants=tuple(g for g in notify.grants if g.kind != "queue"))
    required = _read_by(stripped) - settings.OPTIONAL - settings.RUNTIME
    assert settings.NOTIFY_QUEUE_URL in required - set(_environment(stripped))


def test_lambda_code_names_no_variable_with_a_literal() -> None:
    """Outside the settings module, no Lambda code spells a declared variable's name."""
    declared = settings.DECLARED
    offenders = []
    for package in LAMBDA_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path == ROOT / "shared" / "platform" / "settings.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Constant) and node.value in declared:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert offenders == []


def test_lambda_code_never_imports_the_deploy_declaration() -> None:
    offenders = []
    for package in LAMBDA_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                modules: list[str] = []
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules = [node.module]
                offenders += [
                    f"{path.relative_to(ROOT)}: {m}"
                    for m in modules
                    if m.split(".")[0] in ("topology", "infra", "omni", "bench")
                ]
    assert offenders == []


def test_typed_accessors_read_the_environment_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.OMNI_CES_DELAY_S, " 90 ")
    monkeypatch.setenv(settings.OMNI_OUTBOUND_MODE, "")
    monkeypatch.setenv(settings.OMNI_STAGE, "prod")
    monkeypatch.delenv(settings.AWS_REGION, raising=False)
    monkeypatch.setenv(settings.AWS_DEFAULT_REGION, "eu-west-3")
    assert settings.env_int(settings.OMNI_CES_DELAY_S, 60) == 90
    assert settings.env_str(settings.OMNI_OUTBOUND_MODE, "provider") == "provider"
    assert settings.env_str("OMNI_UNSET_FOR_THIS_TEST") is None
    assert settings.env_int("OMNI_UNSET_FOR_THIS_TEST", 7, environ={}) == 7
    assert settings.stage() == "prod"
    assert settings.aws_region() == "eu-west-3"
    monkeypatch.setenv(settings.AWS_REGION, "us-east-1")
    assert settings.aws_region() == "us-east-1"
