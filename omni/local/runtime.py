"""The whole topology running locally: emulator, resources, functions, HTTP and pollers.

::

    with LocalRuntime(port=0) as runtime:
        requests.post(f"{runtime.base_url}/webchat/sessions", json={...})
        runtime.wait_idle(timeout=10)

Every function runs in this process with one environment: the union of every
function's environment (``topology.function_environment``) is exported to
``os.environ`` while the runtime runs, and put back when it stops.
``POWERTOOLS_SERVICE_NAME`` is the one per-function variable; it is set while a
function's module is imported (see :mod:`omni.local.invoker`).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from omni.local.console import index_page, mount_console
from omni.local.email import CONTROL_PREFIX as EMAIL_CONTROL_PREFIX
from omni.local.email import SesReceiving
from omni.local.emulator import DEFAULT_ACCOUNT_ID, Emulator
from omni.local.environ import EnvironmentPatch
from omni.local.http import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ApiGateway,
    HttpServer,
    LocalRequest,
    LocalResponse,
    Mount,
)
from omni.local.invoker import InvocationResult, Invoker
from omni.local.pollers import QueueEndpoint, Scheduler, SqsPoller
from omni.local.provision import DEFAULT_STAGE, Provisioned, physical_name, provision
from omni.local.state import remove_state, write_state
from omni.local.websocket import LocalWebSocketApi
from omni.local.widget import mount_widget
from shared.platform.http import PUBLIC_BASE_URL_ENV
from topology import (
    PUBLIC_API_URL_ENV,
    PhysicalNames,
    ResourceKind,
    Throttle,
    Topology,
    function_environment,
    mints_links,
    validate,
)

logger = logging.getLogger("omni.local")

#: Variables that differ per function by design and so are not exported process-wide.
PER_FUNCTION_ENV = frozenset({"POWERTOOLS_SERVICE_NAME"})
HEALTH_PATH = "/healthz"
_QUEUE_COUNTS = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)


def forget_cached_clients() -> None:
    """Drop the boto3 clients ``shared.platform.aws`` cached: they keep the endpoint they were made with."""
    module = sys.modules.get("shared.platform.aws")
    reset = getattr(module, "reset_clients", None)
    if callable(reset):
        reset()


class EmulatorSession:
    """Makes boto3 clients bound to the emulator (explicit endpoint and region)."""

    def __init__(self, endpoint_url: str, region: str, *, config: Config | None = None) -> None:
        self.endpoint_url = endpoint_url
        self.region = region
        self._session = boto3.session.Session(region_name=region)
        self._config = config or Config(retries={"max_attempts": 3, "mode": "standard"})

    def client(self, service: str, config: Config | None = None) -> Any:
        session: Any = self._session  # boto3's stubs want a literal service name
        return session.client(service, endpoint_url=self.endpoint_url, config=config or self._config)


def merged_environment(topology: Topology, physical: PhysicalNames, stage: str) -> dict[str, str]:
    """The union of every function's environment, without the per-function variables."""
    merged: dict[str, str] = {}
    for fn in topology.functions:
        for key, value in function_environment(topology, fn, physical, stage).items():
            if key in PER_FUNCTION_ENV:
                continue
            if merged.setdefault(key, value) != value:
                logger.warning(
                    "environment variable %s differs between functions; keeping %r", key, merged[key]
                )
    return merged


class LocalRuntime:
    """Runs ``topology`` locally. Use :meth:`start` / :meth:`stop` or ``with``.

    :param topology: defaults to :data:`topology.TOPOLOGY`.
    :param host, port: where the HTTP API listens; ``port=0`` picks a free port.
    :param stage: physical names are ``omni-<stage>-<name>``.
    :param endpoint_url: an AWS emulator to use; default ``$AWS_ENDPOINT_URL``, or an
        embedded moto server when that is unset.
    :param retry_delay_s: seconds before a failed SQS record is retried (see
        :mod:`omni.local.pollers`); default ``$OMNI_LOCAL_RETRY_DELAY`` or 1.
    :param schedule_interval_s: fire every schedule this often instead of its rate.
    :param state_file: where to write the state file (``omni local`` uses ``.omni/local.json``);
        ``None`` writes none.
    :param reset_emulator: start an embedded emulator empty (moto's state is per process).
    :param serialize_invocations: one invocation at a time per function, like one container.
    :param default_throttle: throttle of the routes that declare none; ``None`` means the
        topology's ``default_throttle``, as on the cloud stage.
    """

    def __init__(
        self,
        topology: Topology | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        stage: str = DEFAULT_STAGE,
        endpoint_url: str | None = None,
        retry_delay_s: float | None = None,
        schedule_interval_s: float | None = None,
        state_file: Path | str | None = None,
        reset_emulator: bool = True,
        serialize_invocations: bool = True,
        default_throttle: Throttle | None = None,
    ) -> None:
        if topology is None:
            from topology import TOPOLOGY  # noqa: PLC0415

            topology = TOPOLOGY
        problems = validate(topology)
        if problems:
            raise ValueError("the topology is not valid:\n  " + "\n  ".join(problems))
        self.topology = topology
        self.host = host
        self.requested_port = port
        self.stage = stage
        self.retry_delay_s = retry_delay_s
        self.schedule_interval_s = schedule_interval_s
        self.state_file = Path(state_file) if state_file is not None else None
        self.serialize_invocations = serialize_invocations
        self.default_throttle = default_throttle
        self.account_id = DEFAULT_ACCOUNT_ID

        self.emulator = Emulator(endpoint_url, reset=reset_emulator)
        self.session: EmulatorSession | None = None
        self.provisioned: Provisioned | None = None
        self.environment: dict[str, str] = {}
        self.invoker: Invoker | None = None
        self.gateway: ApiGateway | None = None
        self.http: HttpServer | None = None
        self.pollers: dict[str, SqsPoller] = {}
        self.scheduler: Scheduler | None = None
        #: SES receiving for the functions with an e-mail trigger (see omni.local.email).
        self.email: SesReceiving | None = None
        #: The WebSocket APIs, each on a port of its own (see omni.local.websocket).
        self.websockets: dict[str, LocalWebSocketApi] = {}
        self.ready = False
        self._mounts: dict[str, Mount] = {}
        self._saved_env = EnvironmentPatch()
        self._sqs: Any = None
        self._health_sqs: Any = None

    # ------------------------------------------------------------------ #
    # Names
    # ------------------------------------------------------------------ #
    @property
    def endpoint_url(self) -> str:
        if self.emulator.endpoint_url is None:
            raise RuntimeError("the runtime is not started")
        return self.emulator.endpoint_url

    @property
    def region(self) -> str:
        return self.emulator.region

    @property
    def base_url(self) -> str:
        if self.http is None:
            raise RuntimeError("the runtime is not started")
        return self.http.base_url

    @property
    def port(self) -> int:
        if self.http is None:
            raise RuntimeError("the runtime is not started")
        return self.http.port

    @property
    def physical(self) -> dict[tuple[ResourceKind, str], str]:
        """``(kind, declared name)`` -> table name, queue URL, bus name or secret ARN."""
        if self.provisioned is None:
            raise RuntimeError("the runtime is not started")
        names: dict[tuple[ResourceKind, str], str] = dict(self.provisioned.physical)
        return names

    def client(self, service: str) -> Any:
        """A boto3 client bound to the emulator (for tests and tools)."""
        if self.session is None:
            raise RuntimeError("the runtime is not started")
        return self.session.client(service)

    # ------------------------------------------------------------------ #
    # Life cycle
    # ------------------------------------------------------------------ #
    def start(self) -> LocalRuntime:
        if self.ready:
            return self
        started = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.ready = True
        logger.info("omni local serving on %s (%.1f s)", self.base_url, time.monotonic() - started)
        return self

    def _start(self) -> None:
        endpoint = self.emulator.start()
        self.session = EmulatorSession(endpoint, self.emulator.region)
        self._sqs = self.session.client("sqs")
        self._health_sqs = self.session.client(
            "sqs", Config(connect_timeout=1, read_timeout=3, retries={"max_attempts": 1})
        )
        self.provisioned = provision(self.topology, self.session, stage=self.stage)
        for api in self.topology.websocket_apis:
            socket_api = LocalWebSocketApi(
                api,
                self.topology.websocket_routes(api.name),
                host=self.host,
                stage=self.stage,
                account_id=self.account_id,
            ).start()
            self.websockets[api.name] = socket_api
            # Functions granted ``manage`` get the management endpoint, as in the cloud.
            self.provisioned.physical[("websocket", api.name)] = socket_api.management_endpoint
        self.environment = merged_environment(self.topology, self.provisioned.physical, self.stage)
        self._export(self.environment)
        self._export({"OMNI_OUTBOUND_MODE": "local"})  # notify: outbound to the outbox, not providers
        self._export({"POWERTOOLS_TRACE_DISABLED": "true"})  # no X-Ray daemon here (Lambda has one)
        forget_cached_clients()

        self.invoker = Invoker(
            self.topology.functions,
            stage=self.stage,
            region=self.region,
            account_id=self.account_id,
            serialize=self.serialize_invocations,
        )
        for socket_api in self.websockets.values():
            socket_api.invoker = self.invoker
        for queue in self.topology.queues:
            resources = self.provisioned.queues[queue.name]
            poller = SqsPoller(
                queue,
                self.topology.consumer_of(queue.name),
                QueueEndpoint(url=resources.url, arn=resources.arn),
                sqs=self.session.client("sqs"),
                invoker=self.invoker,
                region=self.region,
                retry_delay_s=self.retry_delay_s,
            )
            self.pollers[queue.name] = poller
            poller.start()
        entries = [
            (
                fn,
                schedule,
                # Named like the cloud's schedule: <deployed function name>-<schedule name>.
                f"arn:aws:scheduler:{self.region}:{self.account_id}:schedule/default/"
                f"{physical_name(self.stage, fn.name)}-{schedule.name}",
            )
            for fn in self.topology.functions
            for schedule in fn.schedules
        ]
        self.scheduler = Scheduler(
            entries,
            invoker=self.invoker,
            region=self.region,
            account_id=self.account_id,
            interval_s=self.schedule_interval_s,
        )
        self.scheduler.start()

        self.gateway = ApiGateway(
            self.topology,
            self.invoker,
            account_id=self.account_id,
            default_throttle=self.default_throttle or self.topology.default_throttle,
        )
        self.gateway.mount(HEALTH_PATH, self._healthz)
        # The agent console (/console) and its local sign-in (/_local/token).
        mount_console(self.gateway.mount, self.gateway.handle)
        # The web chat widget (/widget/omni-chat.js) and its demo shop (/widget/demo.html).
        mount_widget(self.gateway.mount, lambda: self.base_url, self._webchat_socket_url)
        self.gateway.index = index_page
        self.email = SesReceiving(
            self.topology,
            self.provisioned.physical,
            s3=self.session.client("s3"),
            invoker=self.invoker,
            region=self.region,
            account_id=self.account_id,
            stage=self.stage,
            retry_delay_s=self.retry_delay_s,
        )
        if self.email.triggers:
            self.gateway.mount(EMAIL_CONTROL_PREFIX, self.email.handle)
        for prefix, handler in self._mounts.items():
            self.gateway.mount(prefix, handler)
        self.http = HttpServer(self.gateway, self.host, self.requested_port)
        self.http.start()
        # Webhook signatures (Twilio) cover the URL the provider called: in the cloud the
        # functions derive it from the request; locally it is this server unless set.
        if not os.environ.get(PUBLIC_BASE_URL_ENV):
            self._export({PUBLIC_BASE_URL_ENV: self.base_url})
        # Links in messages (unsubscribe, survey answers) point at this server, as they point
        # at the API's endpoint in the cloud; a tunnel in front of it can set it instead.
        if any(mints_links(fn) for fn in self.topology.functions) and not os.environ.get(PUBLIC_API_URL_ENV):
            self._export({PUBLIC_API_URL_ENV: self.base_url})
        if self.state_file is not None:
            write_state(
                self.state_file,
                {
                    "stage": self.stage,
                    "region": self.region,
                    "endpoint_url": self.endpoint_url,
                    "base_url": self.base_url,
                    "websocket_urls": {name: api.url for name, api in self.websockets.items()},
                    "started_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "physical": self.provisioned.as_json(),
                },
            )

    def stop(self) -> None:
        """Stop serving, stop the pollers and the emulator, restore the environment."""
        self.ready = False
        if self.state_file is not None:
            remove_state(self.state_file)
        if self.http is not None:
            self.http.stop()
        for socket_api in self.websockets.values():
            socket_api.stop()
        self.websockets = {}
        for poller in self.pollers.values():
            poller.signal_stop()
        if self.scheduler is not None:
            self.scheduler.signal_stop()
        for poller in self.pollers.values():
            poller.join()
        if self.scheduler is not None:
            self.scheduler.join()
        if self.email is not None:
            self.email.stop()
        self.pollers = {}
        self.scheduler = None
        self._restore_env()
        self.emulator.stop()
        forget_cached_clients()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _export(self, env: dict[str, str]) -> None:
        self._saved_env.set(env)

    def _restore_env(self) -> None:
        self._saved_env.restore()

    # ------------------------------------------------------------------ #
    # Extra HTTP routes
    # ------------------------------------------------------------------ #
    def _webchat_socket_url(self) -> str | None:
        socket_api = self.websockets.get("webchat")
        return socket_api.url if socket_api is not None else None

    def mount(self, prefix: str, handler: Mount) -> None:
        """Serve ``handler`` for every path under ``prefix`` (before the API's routes)."""
        self._mounts[prefix] = handler
        if self.gateway is not None:
            self.gateway.mount(prefix, handler)

    # ------------------------------------------------------------------ #
    # Health and idleness
    # ------------------------------------------------------------------ #
    def health(self) -> tuple[bool, dict[str, Any]]:
        pollers = {name: poller.alive for name, poller in self.pollers.items()}
        problems = self._emulator_problems()
        problems.extend(f"poller of {name} is down" for name, alive in pollers.items() if not alive)
        problems.extend(self._server_problems())
        body: dict[str, Any] = {
            "status": "ok" if not problems else "unavailable",
            "stage": self.stage,
            "endpoint_url": self.emulator.endpoint_url,
            "functions": [fn.name for fn in self.topology.functions],
            "pollers": pollers,
        }
        if problems:
            body["problems"] = problems
        if self.invoker is not None:
            body["invocations"] = self.invoker.invocations
            body["errors"] = self.invoker.errors
        return not problems, body

    def _emulator_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.ready:
            problems.append("not started")
        if not self.emulator.running:
            problems.append("emulator not running")
        elif self._health_sqs is not None:
            try:
                self._health_sqs.list_queues(QueueNamePrefix=physical_name(self.stage, ""))
            except Exception as exc:
                problems.append(f"emulator unreachable: {type(exc).__name__}")
        return problems

    def _server_problems(self) -> list[str]:
        """The scheduler (when something is scheduled) and the HTTP server."""
        problems: list[str] = []
        if self.scheduler is not None and self.scheduler.entries and not self.scheduler.alive:
            problems.append("scheduler is down")
        if self.http is None or not self.http.running:
            problems.append("HTTP server not running")
        return problems

    def _healthz(self, request: LocalRequest) -> LocalResponse:
        if request.path != HEALTH_PATH:
            return LocalResponse.json(404, {"message": "Not Found"})
        ok, body = self.health()
        return LocalResponse.json(200 if ok else 503, body)

    def queue_depth(self, queue: str, *, dlq: bool = False) -> dict[str, int]:
        """Message counts of a declared queue (or of its DLQ): visible, in flight, delayed."""
        if self.provisioned is None:
            raise RuntimeError("the runtime is not started")
        resources = self.provisioned.queues[queue]
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=resources.dlq_url if dlq else resources.url, AttributeNames=list(_QUEUE_COUNTS)
        )["Attributes"]
        return {
            "visible": int(attributes.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        }

    def _busy(self, *, count_delayed: bool = True) -> list[str]:
        busy: list[str] = []
        if self.invoker is None:
            return ["not started"]
        if self.invoker.running:
            busy.append(f"{self.invoker.running} invocation(s) running")
        if self.email is not None and self.email.pending:
            busy.append(f"{self.email.pending} e-mail deliveries pending")
        for name in self.pollers:
            depth = self.queue_depth(name)
            if not count_delayed:
                depth.pop("delayed")
            if any(depth.values()):
                busy.append(f"queue {name}: {depth}")
        return busy

    def is_idle(self, *, count_delayed: bool = True) -> bool:
        """No invocation running and every queue (not the DLQs) empty, in flight included.

        ``count_delayed=False`` treats delayed messages (a notification deferred to the end of
        the customer's quiet hours, hours away) as settled: nothing can happen to them now."""
        if self.invoker is None:
            return False
        running, generation = self.invoker.activity()
        if running or self._busy(count_delayed=count_delayed):
            return False
        return self.invoker.activity() == (0, generation)

    def wait_idle(self, timeout: float = 30.0, poll_s: float = 0.05, *, count_delayed: bool = True) -> None:
        """Block until :meth:`is_idle`; raises ``TimeoutError`` (saying what is busy) after ``timeout`` s.

        Messages in dead-letter queues do not count: a poison message makes the pipeline
        busy until it has been moved to its DLQ.
        """
        deadline = time.monotonic() + timeout
        while not self.is_idle(count_delayed=count_delayed):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"not idle after {timeout} s: {'; '.join(self._busy()) or 'activity'}")
            time.sleep(poll_s)

    # ------------------------------------------------------------------ #
    # Direct calls
    # ------------------------------------------------------------------ #
    def invoke(self, function: str, event: Any) -> InvocationResult:
        """Invoke a function directly (as ``aws lambda invoke`` would)."""
        if self.invoker is None:
            raise RuntimeError("the runtime is not started")
        return self.invoker.invoke(function, event)

    def receive_email(
        self,
        raw: bytes,
        *,
        function: str | None = None,
        verdicts: dict[str, str] | None = None,
        recipients: list[str] | None = None,
    ) -> str:
        """Receive a raw mail as SES would (stored in the bucket, function invoked asynchronously).

        ``verdicts`` overrides SES's checks (``{"dmarc": "FAIL"}``; the others stay PASS).
        Returns the SES message id; :meth:`wait_idle` waits for the delivery.
        """
        if self.email is None:
            raise RuntimeError("the runtime is not started")
        return self.email.receive(raw, function=function, verdicts=verdicts, recipients=recipients).message_id

    def trigger_schedule(self, function: str, schedule: str) -> InvocationResult:
        """Fire one schedule now."""
        if self.scheduler is None:
            raise RuntimeError("the runtime is not started")
        return self.scheduler.fire(function, schedule)
