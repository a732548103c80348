"""Invoke functions the way Lambda does, one warm "container" per function.

Each function's handler module is imported on its first invocation and kept (a warm
container). ``handler(event, context)`` gets a JSON copy of the event and a fresh
:class:`~omni.local.lambda_context.LambdaContext`; its return value goes through
JSON like Lambda's response does. Exceptions are caught and logged, never raised
into the runtime.

Deviations from Lambda, on purpose:

* Each invocation runs in a *container* of its function, one invocation per container at
  a time, as in Lambda: handler code written for Lambda need not be thread-safe. A
  function has up to ``containers`` of them (default 1, like reserved concurrency 1);
  when all are busy, an invocation waits for one (Lambda would throttle). Container 0
  is the handler module as imported; each further one is a fresh copy of the handler
  module (its own module globals: batch processor, repositories built on first use),
  made when an invocation finds every existing one busy — a cold start. The modules the
  handler imports (``shared/``, boto3) are shared by the containers, as one process
  shares them. ``serialize=False`` drops the containers: every invocation calls the
  imported module at once.
* The timeout is not enforced (a thread cannot be killed): an invocation that runs
  longer than the function's timeout is logged as an error, and its result is kept.
* All functions share one process and one environment (see ``LocalRuntime``).
  ``POWERTOOLS_SERVICE_NAME`` is set to the function's name while its module is
  imported, so module-level Powertools objects get the right service.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from omni.local.emulator import DEFAULT_ACCOUNT_ID, DEFAULT_REGION
from omni.local.environ import patched_environment
from omni.local.lambda_context import LambdaContext
from omni.local.provision import DEFAULT_STAGE, physical_name
from shared.platform import settings
from topology import Function

logger = logging.getLogger("omni.local.invoker")

Handler = Callable[[Any, Any], Any]

#: Only one module import at a time: environment tweaks during import are process-wide.
_IMPORT_LOCK = threading.RLock()


@dataclass(frozen=True)
class InvocationResult:
    function: str
    request_id: str
    ok: bool
    value: Any = None
    #: ``"Handled"``-style error kind: the exception's type name, ``"Runtime.ImportModuleError"``,
    #: ``"Runtime.MarshalError"``; ``None`` when ``ok``.
    error_type: str | None = None
    error_message: str | None = None
    duration_ms: float = 0.0
    timed_out: bool = False


class Invoker:
    """Calls the handlers of the functions of a topology."""

    def __init__(
        self,
        functions: Mapping[str, Function] | list[Function] | tuple[Function, ...],
        *,
        stage: str = DEFAULT_STAGE,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
        serialize: bool = True,
        containers: int = 1,
    ) -> None:
        items = functions.values() if isinstance(functions, Mapping) else functions
        self.functions: dict[str, Function] = {fn.name: fn for fn in items}
        self.stage = stage
        self.region = region
        self.account_id = account_id
        self._handlers: dict[str, Handler] = {}
        self._serialize = serialize
        #: Containers per function at most (Lambda's concurrency of the function).
        self.max_containers = max(1, containers)
        self._pool = threading.Condition()
        self._idle: dict[str, list[int]] = {}
        self._created: dict[str, int] = {}
        self._copies: dict[tuple[str, int], Handler] = {}
        #: Invocations of each function running at once, now and at most so far.
        self.concurrent: dict[str, int] = {}
        self.peak_concurrent: dict[str, int] = {}
        self._state = threading.Condition()
        self._running = 0
        self._generation = 0
        self.invocations = 0
        self.errors = 0

    # ------------------------------------------------------------------ #
    @property
    def running(self) -> int:
        """Invocations in progress."""
        with self._state:
            return self._running

    @property
    def generation(self) -> int:
        """Grows whenever an invocation starts or ends (for idle detection)."""
        with self._state:
            return self._generation

    def activity(self) -> tuple[int, int]:
        """``(running, generation)`` read together."""
        with self._state:
            return self._running, self._generation

    # ------------------------------------------------------------------ #
    def _loaded(self, fn: Function, container: int) -> Handler | None:
        return self._handlers.get(fn.name) if container == 0 else self._copies.get((fn.name, container))

    def handler_for(self, fn: Function, container: int = 0) -> Handler:
        """The handler of one container of the function, loaded on first use (a cold start).

        Container 0 imports the module; container ``n > 0`` executes a fresh copy of it
        (not registered in ``sys.modules``), so that its module globals are its own.
        """
        handler = self._loaded(fn, container)
        if handler is not None:
            return handler
        with _IMPORT_LOCK:
            handler = self._loaded(fn, container)
            if handler is not None:
                return handler
            with patched_environment({settings.POWERTOOLS_SERVICE_NAME: fn.name}):
                module = importlib.import_module(fn.module) if container == 0 else _fresh_copy(fn.module)
            handler = getattr(module, fn.attribute)
            if not callable(handler):
                raise TypeError(f"{fn.handler} is not callable")
            if container == 0:
                self._handlers[fn.name] = handler
            else:
                self._copies[(fn.name, container)] = handler
            logger.debug("loaded %s for function %s (container %d)", fn.handler, fn.name, container)
            return handler

    def _checkout(self, name: str) -> int:
        """A free container of the function (the lowest-numbered; a new one if all are busy)."""
        with self._pool:
            while True:
                idle = self._idle.setdefault(name, [])
                if idle:
                    container = min(idle)
                    idle.remove(container)
                    break
                created = self._created.get(name, 0)
                if created < self.max_containers:
                    container = created
                    self._created[name] = created + 1
                    break
                self._pool.wait()
            running = self.concurrent.get(name, 0) + 1
            self.concurrent[name] = running
            self.peak_concurrent[name] = max(running, self.peak_concurrent.get(name, 0))
            return container

    def _checkin(self, name: str, container: int) -> None:
        with self._pool:
            self._idle.setdefault(name, []).append(container)
            self.concurrent[name] -= 1
            self._pool.notify_all()

    def context_for(self, fn: Function) -> LambdaContext:
        return LambdaContext.for_function(
            physical_name(self.stage, fn.name),
            memory_mb=fn.memory_mb,
            timeout_s=fn.timeout_s,
            region=self.region,
            account_id=self.account_id,
        )

    def invoke(self, function: str | Function, event: Any) -> InvocationResult:
        """Run one invocation synchronously; never raises for handler problems."""
        fn = function if isinstance(function, Function) else self.functions[function]
        context = self.context_for(fn)
        with self._state:
            self._running += 1
            self._generation += 1
            self.invocations += 1
        started = time.monotonic()
        try:
            if self._serialize:
                container = self._checkout(fn.name)
                try:
                    result = self._call(fn, event, context, container)
                finally:
                    self._checkin(fn.name, container)
            else:
                result = self._call(fn, event, context, 0)
        finally:
            with self._state:
                self._running -= 1
                self._generation += 1
                self._state.notify_all()
        duration_ms = (time.monotonic() - started) * 1000
        timed_out = duration_ms > fn.timeout_s * 1000
        if timed_out:
            logger.error(
                "%s: invocation %s ran %.0f ms, over its %d s timeout (Lambda would have stopped it; "
                "not enforced locally)",
                fn.name,
                context.aws_request_id,
                duration_ms,
                fn.timeout_s,
            )
        if not result.ok:
            with self._state:
                self.errors += 1
        return InvocationResult(
            function=fn.name,
            request_id=context.aws_request_id,
            ok=result.ok,
            value=result.value,
            error_type=result.error_type,
            error_message=result.error_message,
            duration_ms=duration_ms,
            timed_out=timed_out,
        )

    def _call(self, fn: Function, event: Any, context: LambdaContext, container: int) -> InvocationResult:
        request_id = context.aws_request_id
        try:
            handler = self.handler_for(fn, container)
        except Exception as exc:
            logger.exception("%s: cannot load handler %s", fn.name, fn.handler)
            return InvocationResult(
                fn.name,
                request_id,
                ok=False,
                error_type="Runtime.ImportModuleError",
                error_message=f"{type(exc).__name__}: {exc}",
            )
        try:
            # Lambda hands the handler a freshly decoded JSON document.
            payload = json.loads(json.dumps(event))
        except (TypeError, ValueError) as exc:
            logger.error("%s: the event is not JSON serialisable: %s", fn.name, exc)
            return InvocationResult(
                fn.name,
                request_id,
                ok=False,
                error_type="InvalidRequestContentException",
                error_message=str(exc),
            )
        try:
            value = handler(payload, context)
        except (Exception, SystemExit) as exc:
            logger.exception("%s: invocation %s failed", fn.name, request_id)
            return InvocationResult(
                fn.name, request_id, ok=False, error_type=type(exc).__name__, error_message=str(exc)
            )
        try:
            value = json.loads(json.dumps(value))
        except (TypeError, ValueError) as exc:
            logger.error(
                "%s: invocation %s returned a value that is not JSON serialisable: %s",
                fn.name,
                request_id,
                exc,
            )
            return InvocationResult(
                fn.name, request_id, ok=False, error_type="Runtime.MarshalError", error_message=str(exc)
            )
        return InvocationResult(fn.name, request_id, ok=True, value=value)


def _fresh_copy(module_name: str) -> ModuleType:
    """Execute the module's code again as a new module object (one more container's globals)."""
    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {module_name!r}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
