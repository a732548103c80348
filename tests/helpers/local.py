"""A small topology of fake handlers (tests/omni/local/fake_handlers.py) for the local runtime's tests."""

from __future__ import annotations

from topology import (
    EventBus,
    EventRule,
    Function,
    Grant,
    Gsi,
    HttpRoute,
    Queue,
    Schedule,
    Secret,
    Table,
    Throttle,
    Topology,
)


def make_topology(*, schedules: tuple[Schedule, ...] = ()) -> Topology:
    bus = EventBus(name="test-events", archive_retention_days=0)
    return Topology(
        bus=bus,
        tables=(
            Table(name="items", gsis=(Gsi(name="by-text", partition_key="text"),)),
            Table(
                name="outbox",
                partition_key="notification_id",
                sort_key=None,
                gsis=(
                    Gsi(name="by-provider-id", partition_key="provider_message_id", projection="KEYS_ONLY"),
                ),
                ttl_attribute="expires_at",
            ),
        ),
        queues=(
            Queue(name="things", batch_size=10, visibility_timeout_s=60, max_receive_count=3),
            Queue(name="work", batch_size=10, visibility_timeout_s=60, max_receive_count=3),
            Queue(name="pt", batch_size=5, visibility_timeout_s=60, max_receive_count=2),
        ),
        rules=(EventRule(name="thing-happened", detail_types=("thing.happened",), target_queue="things"),),
        secrets=(
            Secret(
                name="api-key",
                config_key="apiKey",
                local_env_var="OMNI_TEST_API_KEY",
                local_default="local-api-key",
            ),
        ),
        functions=(
            Function(
                name="echo",
                handler=H + "echo",
                source_dir="tests/omni/local",
                description="echoes the event",
                memory_mb=128,
                timeout_s=5,
                routes=(
                    HttpRoute("GET", "/items/{item_id}"),
                    HttpRoute("GET", "/items/special"),
                    HttpRoute("GET", "/files/{proxy+}"),
                    HttpRoute("GET", "/files/{name}"),
                    HttpRoute("POST", "/echo/sessions/{session_id}/messages"),
                    HttpRoute("POST", "/echo"),
                    HttpRoute("GET", "/agent/me", auth="agent"),
                    HttpRoute("GET", "/limited", throttle=Throttle(rate_per_s=0.01, burst=2)),
                ),
                grants=(Grant("secret", "api-key", "get"), Grant("table", "items", "read")),
                environment={"ECHO_FLAG": "on"},
            ),
            Function(
                name="plain",
                handler=H + "plain",
                source_dir="tests/omni/local",
                description="answers without statusCode",
                routes=(HttpRoute("GET", "/plain"),),
            ),
            Function(
                name="boom",
                handler=H + "boom",
                source_dir="tests/omni/local",
                description="raises",
                routes=(HttpRoute("GET", "/boom"),),
            ),
            Function(
                name="fancy",
                handler=H + "fancy",
                source_dir="tests/omni/local",
                description="full response",
                routes=(HttpRoute("GET", "/fancy"), HttpRoute("GET", "/malformed")),
            ),
            Function(
                name="malformed",
                handler=H + "malformed",
                source_dir="tests/omni/local",
                description="answers with a dict body",
                routes=(HttpRoute("GET", "/really-malformed"),),
            ),
            Function(
                name="missing",
                handler="tests.omni.local.no_such_module.handler",
                source_dir="tests/omni/local",
                description="cannot be imported",
                routes=(HttpRoute("GET", "/missing"),),
            ),
            Function(
                name="publisher",
                handler=H + "publish",
                source_dir="tests/omni/local",
                description="puts an event on the bus",
                routes=(HttpRoute("POST", "/things"),),
                grants=(Grant("bus", bus.name, "publish"),),
            ),
            Function(
                name="store",
                handler=H + "store",
                source_dir="tests/omni/local",
                description="writes events to the items table",
                queue="things",
                grants=(Grant("table", "items", "readwrite"),),
            ),
            Function(
                name="worker",
                handler=H + "batch",
                source_dir="tests/omni/local",
                description="obeys the actions in its records",
                queue="work",
                grants=(Grant("table", "outbox", "readwrite"),),
            ),
            Function(
                name="pt-api",
                handler="tests.omni.local.pt_api.handler",
                source_dir="tests/omni/local",
                description="Powertools resolver",
                routes=(HttpRoute("GET", "/pt/items/{item_id}", auth="agent"),),
            ),
            Function(
                name="pt-batch",
                handler="tests.omni.local.pt_batch.handler",
                source_dir="tests/omni/local",
                description="Powertools batch processor",
                queue="pt",
            ),
            Function(
                name="ticker",
                handler=H + "tick",
                source_dir="tests/omni/local",
                description="runs on a schedule",
                schedules=schedules or (Schedule(name="tick", rate_minutes=5),),
            ),
        ),
    )


H = "tests.omni.local.fake_handlers."
