"""The AWS emulator the local runtime talks to.

Either moto's server started in this process on an ephemeral loopback port (one per
process, shared by the runtimes started in it), or an emulator the developer already
runs (an external moto server, LocalStack) named by the standard ``AWS_ENDPOINT_URL``
variable. Starting an :class:`Emulator` points every boto3 client created afterwards
in this process at it, through the standard variables; :meth:`Emulator.stop` puts
those variables back as they were.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import urllib.request
from typing import Any

from omni.local.environ import EnvironmentPatch

logger = logging.getLogger("omni.local.emulator")

ENDPOINT_ENV = "AWS_ENDPOINT_URL"
DEFAULT_REGION = "us-east-1"
#: Credentials handed to boto3 when none are configured (the emulator accepts any).
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
#: moto's default account, used in ARNs the emulator does not hand out itself.
DEFAULT_ACCOUNT_ID = "123456789012"

_NOISY_LOGGERS = {
    "werkzeug": logging.ERROR,
    "moto": logging.ERROR,
    "botocore.credentials": logging.WARNING,
    "botocore.configprovider": logging.WARNING,
}


def quiet_emulator_logging() -> None:
    """moto's server logs every request at INFO through werkzeug: keep only errors.

    botocore also says at INFO, for every client, that it found the endpoint variable.
    """
    for name, level in _NOISY_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def _cache_moto_service_names() -> None:
    """moto's server lists its package folder (``listdir`` + ``isdir`` of ~150 entries) on every
    request to find the service a host names; the folder does not change while it runs."""
    from moto import backends  # noqa: PLC0415

    if getattr(backends.list_of_moto_modules, "_omni_cached", False):
        return
    names = tuple(backends.list_of_moto_modules())

    def list_of_moto_modules() -> tuple[str, ...]:
        return names

    list_of_moto_modules._omni_cached = True  # type: ignore[attr-defined]
    backends.list_of_moto_modules = list_of_moto_modules  # type: ignore[assignment]


class _EmbeddedServer:
    """The process's one embedded moto server, shared by the runtimes of the process.

    moto keeps its state per process anyway, and a stable endpoint keeps boto3 clients
    that warm handler modules created at import time working when a later runtime in
    the same process (the next test module) starts. It stays up until the process
    exits (or :func:`shutdown_embedded_server`); each first user after an idle spell
    starts from an empty emulator when it asks for a reset.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self.endpoint_url: str | None = None
        self.users = 0

    def acquire(self, *, reset: bool) -> str:
        with self._lock:
            if self._server is None or not self._alive():
                from moto.server import ThreadedMotoServer  # noqa: PLC0415 - heavy, only when needed

                from omni.local.atomic import make_moto_dynamodb_atomic, make_moto_sqs_atomic  # noqa: PLC0415
                from omni.local.fast_events import make_moto_events_fast  # noqa: PLC0415
                from omni.local.fast_queries import make_moto_queries_fast  # noqa: PLC0415
                from omni.local.fast_responses import make_moto_responses_fast  # noqa: PLC0415
                from omni.local.fast_sqs import make_moto_sqs_fast  # noqa: PLC0415
                from omni.local.fast_transactions import make_moto_transactions_fast  # noqa: PLC0415

                make_moto_dynamodb_atomic()
                make_moto_sqs_atomic()
                make_moto_transactions_fast()
                make_moto_queries_fast()
                make_moto_sqs_fast()
                make_moto_responses_fast()
                make_moto_events_fast()
                _cache_moto_service_names()
                server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
                server.start()
                host, port = server.get_host_and_port()
                self._server = server
                self.endpoint_url = f"http://{host}:{port}"
                logger.info("started an embedded moto server at %s", self.endpoint_url)
            if reset and self.users == 0:
                # moto's state is per process: start from nothing, whoever used it before.
                _post(f"{self.endpoint_url}/moto-api/reset")
            self.users += 1
            assert self.endpoint_url is not None
            return self.endpoint_url

    def release(self) -> None:
        with self._lock:
            self.users = max(0, self.users - 1)

    def _alive(self) -> bool:
        thread = getattr(self._server, "_thread", None)
        return thread is None or thread.is_alive()

    @property
    def running(self) -> bool:
        with self._lock:
            return self._server is not None and self._alive()

    def shutdown(self) -> None:
        with self._lock:
            server, self._server = self._server, None
            self.endpoint_url = None
            self.users = 0
        if server is not None:
            try:
                server.stop()
            except Exception:  # pragma: no cover - best effort at exit
                logger.debug("stopping the embedded moto server failed", exc_info=True)


_EMBEDDED = _EmbeddedServer()
atexit.register(_EMBEDDED.shutdown)


def shutdown_embedded_server() -> None:
    """Stop the process's embedded moto server (the next runtime starts a new one)."""
    _EMBEDDED.shutdown()


class Emulator:
    """Starts (or adopts) the AWS emulator and exports the environment that reaches it.

    :param endpoint_url: use this emulator; ``None`` means ``$AWS_ENDPOINT_URL`` when set,
        otherwise the process's embedded moto server (see :class:`_EmbeddedServer`).
    :param reset: start from an empty embedded emulator when no other runtime of the
        process is using it. Never applied to an external endpoint.
    """

    def __init__(self, endpoint_url: str | None = None, *, reset: bool = True) -> None:
        self._requested_endpoint = endpoint_url
        self._reset = reset
        self._saved_env = EnvironmentPatch()
        self.endpoint_url: str | None = None
        self.region: str = DEFAULT_REGION
        self.embedded = False

    # ------------------------------------------------------------------ #
    def start(self) -> str:
        """Start or adopt the emulator; returns its endpoint URL."""
        if self.endpoint_url is not None:
            return self.endpoint_url
        quiet_emulator_logging()
        endpoint = (self._requested_endpoint or os.environ.get(ENDPOINT_ENV) or "").rstrip("/")
        if endpoint and endpoint != _EMBEDDED.endpoint_url:
            self.embedded = False
            logger.info("using the AWS emulator at %s", endpoint)
        else:
            # No endpoint given, or the one another runtime of this process exported.
            endpoint = _EMBEDDED.acquire(reset=self._reset)
            self.embedded = True
        self.endpoint_url = endpoint
        self._export_environment()
        return self.endpoint_url

    def stop(self) -> None:
        """Release the emulator (the embedded server is kept for the process) and restore the environment."""
        if self.endpoint_url is not None and self.embedded:
            _EMBEDDED.release()
        self._restore_environment()
        self.endpoint_url = None
        self.embedded = False

    @property
    def running(self) -> bool:
        if self.endpoint_url is None:
            return False
        return _EMBEDDED.running if self.embedded else True

    def __enter__(self) -> Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ #
    def _export_environment(self) -> None:
        assert self.endpoint_url is not None
        region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or DEFAULT_REGION
        self.region = region
        wanted: dict[str, str] = {
            ENDPOINT_ENV: self.endpoint_url,
            "AWS_DEFAULT_REGION": region,
            "AWS_REGION": region,
        }
        if not os.environ.get("AWS_ACCESS_KEY_ID") or not os.environ.get("AWS_SECRET_ACCESS_KEY"):
            wanted.update(FAKE_CREDENTIALS)
        self._saved_env.set(wanted)

    def _restore_environment(self) -> None:
        self._saved_env.restore()


def _post(url: str) -> None:
    request = urllib.request.Request(url, data=b"", method="POST")  # noqa: S310 - loopback URL we built
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        response.read()
