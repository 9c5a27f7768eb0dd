"""The local runner: moto in-process, the template's resources, HTTP API, queues and schedules.

with Runner(templates=[Path("template.yaml")], port=0, clock=ManualClock()) as runner:
    requests.get(runner.url + "/health")
    runner.boto3_client("events").put_events(...)
    runner.drain()
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import boto3
from moto.server import ThreadedMotoServer

from local.auth import AUDIENCE, Issuer
from local.clock import Clock, RealClock
from local.functions import DEFAULT_MAX_INSTANCES, ROOT, FunctionPool, LocalFunction
from local.http import ApiGateway, bind_server
from local.pump import HIDDEN_RETRY_SECONDS, Pump, QueueConsumer, StreamConsumer
from local.resources import Deployed, create_resources
from local.template import DEFAULT_STACK, REGION, Template, load_template
from local.websocket import WebSocketGateway

if TYPE_CHECKING:
    from local.crm_wiring import CrmWiring
    from local.google import GoogleDouble
    from local.google_wiring import GoogleWiring
    from local.hubspot import HubSpotDouble
    from local.microsoft import MicrosoftDouble
    from local.microsoft_wiring import MicrosoftWiring
    from local.salesforce import SalesforceDouble

log = logging.getLogger(__name__)

TICK_SECONDS = 0.5
# Routes a warm start (`make run`) sends one request through once their function's sandbox is up,
# so the first real request finds the route's imports, resolver and settings ready: Graph gives a
# new subscription's validation request 10 s (issue 12). `{}` is refused (400
# invalid_notification) and queues nothing; it reads nothing either (the stores' AWS clients are
# made on first use, by the first notification).
WARM_REQUESTS: tuple[tuple[str, str, bytes], ...] = (("POST", "/webhooks/graph", b"{}"),)
STOP_GRACE_SECONDS = 2.0  # how long stop() lets requests in flight finish after their sandboxes die


class _OneDynamoDBRequestAtATime:
    """moto's WSGI app with DynamoDB requests served one at a time (other services stay concurrent).

    moto's DynamoDB backend is not thread-safe: TransactWriteItems deep-copies every table it
    touches while other request threads write to them, and fails with "dictionary changed size
    during iteration" (a 500 that reached the API as a 500 when clients wrote concurrently).
    DynamoDB itself serves concurrent transactions; the runner must not fail where it would not.
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self.app(environ, start_response)
        with self.lock:
            return list(self.app(environ, start_response))  # the whole response, inside the lock


def start_moto() -> ThreadedMotoServer:
    """moto's server on a free loopback port, safe for concurrent DynamoDB requests."""
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    server: Any = moto._server  # ThreadedMotoServer offers no way to wrap its app
    server.app = _OneDynamoDBRequestAtATime(server.app)
    return moto


class Runner:
    """Everything `make run` and the e2e tests need, as a context manager."""

    def __init__(
        self,
        templates: Sequence[Path] = (ROOT / "template.yaml",),
        *,
        port: int = 3000,
        clock: Clock | None = None,
        parameters: Mapping[str, str] | None = None,
        stack_name: str = DEFAULT_STACK,
        host: str = "127.0.0.1",
        log_prefix: bool = True,
        warm: bool = False,
        max_instances: int = DEFAULT_MAX_INSTANCES,
        environment: Mapping[str, str] | None = None,
        google: GoogleDouble | None = None,
        microsoft: MicrosoftDouble | None = None,
        websocket_port: int = 0,
        salesforce: SalesforceDouble | None = None,
        hubspot: HubSpotDouble | None = None,
    ) -> None:
        """`environment`: variables every function sees on top of its template environment.
        `google`: a started Google double the functions talk to instead of Google
        (local.google_wiring: OAuth client, push topic to this runner, settings). `microsoft`:
        the same for the Microsoft double (local.microsoft_wiring). `websocket_port`: where the
        template's WebSocket API listens (`websocket_url`; 0: a free port). `salesforce` and
        `hubspot` (both or neither): started CRM doubles the integrations connect to
        (local.crm_wiring)."""
        self.templates = [Path(t) for t in templates]
        self.clock: Clock = clock or RealClock()
        self._realtime = isinstance(self.clock, RealClock)
        self._parameters = dict(parameters or {})
        self._stack_name = stack_name
        self._host = host
        self._port = port
        self._log_prefix = log_prefix
        self._warm = warm
        self._max_instances = max_instances
        self._environment = dict(environment or {})
        self.google = google
        self.google_wiring: GoogleWiring | None = None
        self.microsoft = microsoft
        self.microsoft_wiring: MicrosoftWiring | None = None
        self.salesforce = salesforce
        self.hubspot = hubspot
        self.crm_wiring: CrmWiring | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._moto: ThreadedMotoServer | None = None
        self._server: Any = None
        self._serving = False
        self._pool: FunctionPool | None = None
        self._clients: dict[str, Any] = {}
        self._websocket_port = websocket_port
        self.websocket: WebSocketGateway | None = None
        self.websocket_url: str | None = None
        self.warmed: dict[str, int] = {}  # "POST /webhooks/graph" -> the warm-up's HTTP status

    # ---------------------------------------------------------------------------- lifecycle

    def start(self) -> Runner:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request lines
        self._moto = start_moto()
        moto_host, moto_port = self._moto.get_host_and_port()
        self.endpoint_url = f"http://{moto_host}:{moto_port}"
        # moto's backends are per process: start from a clean slate (one runner per process at a time).
        reset = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")  # noqa: S310
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - our own loopback moto

        self._server = bind_server(self._host, self._port)
        self.url = f"http://{self._host}:{self._server.server_address[1]}"
        self.issuer = Issuer.create(self.url)
        self.issuer.save()
        if self.google is not None:
            from local.google_wiring import wire_google

            self.google_wiring = wire_google(self.google, self.url)
            self._parameters = {**self.google_wiring.parameters, **self._parameters}
            self._environment = {**self.google_wiring.environment, **self._environment}

        if self.microsoft is not None:
            from local.microsoft_wiring import wire_microsoft

            self.microsoft_wiring = wire_microsoft(self.microsoft, self.url)
            self._parameters = {**self.microsoft_wiring.parameters, **self._parameters}
            self._environment = {**self.microsoft_wiring.environment, **self._environment}

        if self.salesforce is not None and self.hubspot is not None:
            from local.crm_wiring import wire_crm

            self.crm_wiring = wire_crm(self.salesforce, self.hubspot, self.url)
            self._parameters = {**self.crm_wiring.parameters, **self._parameters}
            self._environment = {**self.crm_wiring.environment, **self._environment}

        self.template = self._load_template()
        self.deployed: Deployed = create_resources(self.boto3_client, self.template)
        if self.crm_wiring is not None:
            from local.crm_wiring import store_client_secrets

            store_client_secrets(self.boto3_client("secretsmanager"), self.deployed.secrets, self.crm_wiring)
        if self.microsoft_wiring is not None and "MicrosoftClientSecret" in self.deployed.secrets:
            from local.microsoft_wiring import store_client_secret as store_microsoft_secret

            store_microsoft_secret(
                self.boto3_client("secretsmanager"),
                self.deployed.secrets["MicrosoftClientSecret"],
                self.microsoft_wiring.app,
            )
        if self.google_wiring is not None and "GoogleClientSecret" in self.deployed.secrets:
            from local.google_wiring import store_client_secret

            store_client_secret(
                self.boto3_client("secretsmanager"),
                self.deployed.secrets["GoogleClientSecret"],
                self.google_wiring.client,
            )
        consumers = self._queue_consumers() + self._hidden_bus_queues()
        # The notifier's @connections endpoint (template default: the real API's) is this server.
        self._environment = {"REALTIME_ENDPOINT_URL": self.url, **self._environment}
        self._pool = FunctionPool(
            self.template.functions(),
            self.endpoint_url,
            self._log_prefix,
            self._max_instances,
            environment=self._environment,
        )
        websocket_routes = self.template.websocket_routes()
        if websocket_routes:
            self.websocket = WebSocketGateway(
                websocket_routes,
                self._pool.invoke,
                host=self._host,
                port=self._websocket_port,
                stage=self.template.parameters.get("Stage", "dev"),
            ).start()
            self.websocket_url = self.websocket.url
        self._server.gateway = ApiGateway(
            self.template.routes(),
            self.template.authorizers(),
            self.issuer,
            self._pool.invoke,
            clock=self.clock,
            connections=self.websocket,
        )
        self.pump = Pump(
            sqs=self.boto3_client("sqs"),
            scheduler=self.boto3_client("scheduler"),
            functions=self._pool,
            clock=self.clock,
            consumers=consumers,
            scheduled_rules=self.template.scheduled_rules(),
            queue_url_by_arn=self.deployed.queue_url_by_arn,
            fifo_content_dedup=self._content_dedup_queues(),
            streams=self.boto3_client("dynamodbstreams"),
            stream_consumers=self._stream_consumers(),
        )
        self._spawn(self._server.serve_forever, "http")
        self._serving = True
        if self._realtime:
            self._spawn(self._pump_forever, "pump")
        if self._warm:
            routes = {(r.method, r.path): r.function for r in self.template.routes()}
            for fn in self._pool.functions.values():
                requests = [
                    (method, path, body)
                    for method, path, body in WARM_REQUESTS
                    if routes.get((method, path)) == fn.function.logical_id
                ]
                self._spawn(partial(self._warm_function, fn, requests), f"warm-{fn.function.logical_id}")
        return self

    def _warm_function(self, fn: LocalFunction, requests: Sequence[tuple[str, str, bytes]]) -> None:
        """Start `fn`'s sandbox, then send it its `WARM_REQUESTS`; `warmed` records each answer."""
        fn.warm()
        for method, path, body in requests:
            request = urllib.request.Request(  # noqa: S310 - our own loopback server
                self.url + path, data=body, method=method, headers={"Content-Type": "application/json"}
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as error:
                status = error.code
            except OSError as error:
                log.warning("warm-up %s %s failed: %s", method, path, error)
                continue
            self.warmed[f"{method} {path}"] = status

    def stop(self) -> None:
        """Stop within a few seconds, busy or not: no new connections, every sandbox killed (requests
        in flight answer 500 or lose their connection after STOP_GRACE_SECONDS), then moto."""
        self._stop.set()
        if self._server is not None and self._serving:
            self._server.shutdown()  # the accept loop ends within its 0.5 s poll
            self._serving = False
        if self.websocket is not None:
            self.websocket.stop()
        if self._pool is not None:
            self._pool.stop()
        if self._server is not None:
            self._server.close(grace=STOP_GRACE_SECONDS)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        if self._moto is not None:
            self._moto.stop()
            self._moto = None

    def __enter__(self) -> Runner:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------------- public API

    def token(
        self, tenant: str = "demo", role: str = "owner", sub: str = "local-user", ttl: int = 3600
    ) -> str:
        """A bearer token the API accepts (`Authorization: Bearer <token>`)."""
        return self.issuer.token(tenant=tenant, role=role, sub=sub, ttl=ttl)

    def advance(self, seconds: float) -> None:
        """Move the runner clock (visibility timeouts and schedules follow it)."""
        self.clock.advance(seconds)

    def drain(self, timeout: float = 60.0) -> None:
        """Pump queues and due schedules until nothing is visible and nothing is due."""
        self.pump.drain(timeout=timeout)

    def boto3_client(self, service: str) -> Any:
        """A boto3 client on the runner's moto (cached per service)."""
        if service not in self._clients:
            self._clients[service] = boto3.client(
                service,  # type: ignore[call-overload]
                region_name=REGION,
                endpoint_url=self.endpoint_url,
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - dummy credentials for moto
            )
        return self._clients[service]

    def physical_name(self, logical_id: str) -> str:
        return self.template.physical_name(logical_id)

    def queue_url(self, logical_id: str) -> str:
        return self.deployed.queue_urls[logical_id]

    # ------------------------------------------------------------------------------ wiring

    def _load_template(self) -> Template:
        probe = load_template(self.templates, stack_name=self._stack_name)
        defaults = {"JwtIssuer": self.issuer.issuer, "JwtAudience": AUDIENCE}
        parameters = {k: v for k, v in defaults.items() if k in probe.parameters_spec}
        parameters.update(self._parameters)
        return load_template(self.templates, parameters=parameters, stack_name=self._stack_name)

    def _queue_consumers(self) -> list[QueueConsumer]:
        consumers = []
        for mapping in self.template.queue_mappings():
            if not mapping.enabled:
                continue
            url = self.deployed.queue_url_by_arn[mapping.queue_arn]
            consumers.append(
                QueueConsumer(
                    function=mapping.function,
                    queue_url=url,
                    queue_arn=mapping.queue_arn,
                    visibility_timeout=self.deployed.visibility_timeouts[url],
                    batch_size=mapping.batch_size,
                    report_batch_item_failures=mapping.report_batch_item_failures,
                )
            )
        return consumers

    def _stream_consumers(self) -> list[StreamConsumer]:
        """DynamoDB stream event sources: each table's stream ARN, as moto labels it."""
        dynamodb = self.boto3_client("dynamodb")
        consumers = []
        for mapping in self.template.stream_mappings():
            table = dynamodb.describe_table(TableName=self.deployed.tables[mapping.table])["Table"]
            consumers.append(
                StreamConsumer(
                    function=mapping.function,
                    stream_arn=table["LatestStreamArn"],
                    batch_size=mapping.batch_size,
                    report_batch_item_failures=mapping.report_batch_item_failures,
                    starting_position=mapping.starting_position,
                )
            )
        return consumers

    def _hidden_bus_queues(self) -> list[QueueConsumer]:
        """EventBridge rules that target a function: rule -> hidden queue -> function, one event at a time."""
        sqs, events = self.boto3_client("sqs"), self.boto3_client("events")
        consumers = []
        for rule in self.template.bus_rules_to_functions():
            name = f"{self._stack_name}-{rule.name}-local"[:80]
            dlq = sqs.create_queue(QueueName=f"{name}-dlq"[:80])["QueueUrl"]
            dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            url = sqs.create_queue(
                QueueName=name,
                Attributes={
                    "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
                },
            )["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
                "QueueArn"
            ]
            events.put_rule(Name=name, EventBusName=rule.bus_name, EventPattern=json.dumps(rule.pattern))
            events.put_targets(Rule=name, EventBusName=rule.bus_name, Targets=[{"Id": "local", "Arn": arn}])
            consumers.append(
                QueueConsumer(
                    function=rule.function,
                    queue_url=url,
                    queue_arn=arn,
                    visibility_timeout=HIDDEN_RETRY_SECONDS,
                    batch_size=1,
                    raw_events=True,
                    input=rule.input,
                )
            )
        return consumers

    def _content_dedup_queues(self) -> dict[str, bool]:
        out = {}
        for lid, url in self.deployed.queue_urls.items():
            props = self.template.properties(lid)
            out[url] = str(props.get("ContentBasedDeduplication", False)).lower() == "true"
        return out

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=f"runner-{name}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _pump_forever(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.pump.tick()
            except Exception:
                log.exception("pump tick failed")
