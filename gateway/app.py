"""The gateway's FastAPI application: REST routes, the WebSocket endpoint at
`/` and `/ws`, health endpoints, and the start-up and shut-down around them.

`create_app(settings)` expects Ray to be initialised in this process (the
command line does that) and a `StreamRegistry` to exist in the cluster.

Draining (`app.state.drain()`, what SIGTERM does under `wrencos`): `/ready`
answers 503 at once and new WebSockets are refused with 1012; after
`DRAIN_NOTICE_SECONDS` the open connections are closed with 1012 in waves
over `DRAIN_SECONDS`, each after everything queued for it was written. Apps
reconnect through the load balancer to another gateway: opted-in apps resume
from their last event (nothing lost), old apps get the stream's state and
chat history afresh.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.routing import WebSocketRoute
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]  # the package ships no type hints

from core import money
from gateway import errors
from gateway.context import GatewayContext
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, GatewayMetrics, LiveGauges
from gateway.realtime import asyncapi
from gateway.realtime.protocol import error_frame
from gateway.realtime.ws_session import WsSession
from gateway.rest import (
    analytics as rest_analytics,
    auth as rest_auth,
    flash_sales as rest_flash_sales,
    links as rest_links,
    livestreams as rest_livestreams,
    moderation as rest_moderation,
    orders as rest_orders,
    payments as rest_payments,
    products as rest_products,
    refusals as rest_refusals,
    users as rest_users,
    video as rest_video,
)
from gateway.security.credentials import TokenService
from gateway.security.guard import reject_operators
from gateway.security.password_pool import PasswordPool
from gateway.security.ratelimit import TokenBucket
from gateway.services.errors import ServiceError
from gateway.streams.hub import Hub
from gateway.streams.live_directory import LiveDirectory
from gateway.transport.connection import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, Connection
from gateway.transport.deadline import RequestDeadline
from persistence.analytics import AnalyticsStore
from persistence.chat import ChatStore
from persistence.chat_pages import ChatPages
from persistence.database import DatabaseConfig, connect, ensure_indexes, ping
from persistence.flash_sales import FlashSaleStore
from persistence.orders import OrderStore
from persistence.payments import PaymentStore
from persistence.products import ProductStore
from persistence.streams import StreamStore
from persistence.users import UserStore
from persistence.views import ViewStore
from runtime import __version__
from runtime.gc_policy import freeze_startup
from runtime.logs import add_secrets, uri_password
from runtime.settings import Settings

log = structlog.get_logger("gateway.app")


def database_config(settings: Settings, uri: str) -> DatabaseConfig:
    return DatabaseConfig(uri=uri, name=settings.mongodb_db, write_concern=settings.mongodb_write_concern)


READY_DB_PING_S = 1.5  # /ready must itself answer quickly while the database hangs
CLOSE_POLICY_VIOLATION = 1008
CLOSE_SERVICE_RESTART = 1012  # "reconnect": this gateway is going away, another one serves
DRAIN_WAVES_PER_SECOND = 10


class AddressCounter:
    """Open WebSocket connections per client address, on this gateway."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more connection from `address`; False (and nothing counted) when at the limit."""
        n = self._open.get(address, 0)
        if self.limit > 0 and n >= self.limit:
            return False
        self._open[address] = n + 1
        return True

    def release(self, address: str) -> None:
        n = self._open.get(address, 0) - 1
        if n > 0:
            self._open[address] = n
        else:
            self._open.pop(address, None)


def _ray_node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def origin_allowed(allowed: frozenset[str], origin: str | None) -> bool:
    """Any origin when the allow-list is empty; else the `Origin` header must be on it.
    A client that sends no `Origin` (a native app, not a browser) is let in: the
    list exists to stop other web pages from using a visitor's browser."""
    if not allowed or origin is None:
        return True
    return origin.strip().rstrip("/").lower() in allowed


def create_app(settings: Settings, mongodb_uri: str, jwt_secret: str, gateway_id: str | None = None) -> FastAPI:
    gateway_id = gateway_id or f"gw-{secrets.token_hex(4)}"
    money.use_currency(settings.shop_currency)  # request amounts (and the OpenAPI document) are in it
    add_secrets(
        [
            jwt_secret,
            *settings.previous_jwt_secrets(),
            uri_password(mongodb_uri),
            settings.agora_app_certificate.get_secret_value() if settings.agora_app_certificate else None,
            settings.metrics_token.get_secret_value() if settings.metrics_token else None,
        ]
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = connect(database_config(settings, mongodb_uri))
        app.state.db = db  # /ready pings it
        await ensure_indexes(db)
        users = UserStore(db)
        passwords = PasswordPool(settings.password_hash_workers, settings.password_hash_queue)
        if settings.admin_email and settings.admin_password:
            await users.ensure_admin(settings.admin_email, await passwords.hash(settings.admin_password))
            log.info("admin_ensured", email=settings.admin_email)
        hub = Hub(settings.batch_interval_ms / 1000, settings.write_interval_ms / 1000)
        hub.on_fanout = metrics.fanout_seconds.observe
        directory = LiveDirectory(
            hub,
            gateway_id,
            settings.chat_history_size,
            metrics,
            settings.relay_idle_seconds,
            settings.relay_outbox_max_commands,
        )

        def gauges() -> LiveGauges:
            v2 = sum(1 for c in hub.connections if c.protocol >= 2)
            return LiveGauges(
                connections_v1=len(hub.connections) - v2,
                connections_v2=v2,
                watchers=sum(1 for c in hub.connections if c.watching is not None),
                live_streams=len(directory.live),
                relays_active=sum(1 for r in directory.relays.values() if r.active),
                draining=bool(app.state.draining),
                frames_sent=hub.frames_out,
                outbox_queued=sum(r.queued for r in directory.relays.values()),
                streams_degraded=sum(1 for r in directory.relays.values() if r.active and not r.healthy),
            )

        metrics.bind(gauges)
        app.state.ctx = GatewayContext(
            settings=settings,
            gateway_id=gateway_id,
            metrics=metrics,
            node_id=_ray_node_id(),
            tokens=TokenService(jwt_secret, settings.jwt_ttl_seconds, settings.previous_jwt_secrets()),
            users=users,
            streams=StreamStore(db),
            chat=ChatStore(db),
            hub=hub,
            directory=directory,
            products=ProductStore(db),
            orders=OrderStore(db),
            payments=PaymentStore(db),
            flash_sales=FlashSaleStore(db),
            views=ViewStore(db),
            analytics=AnalyticsStore(db),
            chat_pages=ChatPages(db),
            login_limit=TokenBucket(settings.login_rate_per_minute),
            order_limit=TokenBucket(settings.order_rate_per_minute),
            signup_limit=TokenBucket(settings.signup_rate_per_minute),
            passwords=passwords,
        )
        directory.start()
        app.state.ctx.order_sweeper.start()
        try:
            await asyncio.wait_for(directory.synced.wait(), 30)
        except TimeoutError:
            log.warning("registry_not_synced", hint="is the StreamRegistry actor running?")
        metrics.gc_pauses.install()
        frozen = freeze_startup() if settings.gc_freeze else 0
        log.info("gateway_ready", gateway_id=gateway_id, version=__version__, gc_frozen_objects=frozen)
        yield
        metrics.gc_pauses.uninstall()
        app.state.draining = True  # new sockets are refused from here on
        for conn in list(hub.connections):
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        await app.state.ctx.order_sweeper.stop()
        await directory.leave_all()
        await directory.close()
        await db.client.close()
        passwords.close()
        log.info("gateway_stopped", gateway_id=gateway_id)

    app = FastAPI(
        title="WrenCOS Live",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(reject_operators)],
        description="Realtime backend for live shopping: REST beside the WebSocket at `/` and `/ws`.",
        # /docs is served below from assets shipped in a pinned package, never from a CDN:
        # it works offline and on closed networks.
        docs_url=None,
        redoc_url=None,
    )
    _install_docs(app)
    errors.install(app)
    app.add_middleware(RequestDeadline, seconds=settings.rest_deadline_seconds)  # no REST request waits longer
    app.add_exception_handler(ServiceError, rest_refusals.handle)  # a service's refusal, as REST answers it
    routers = [
        rest_auth.router,
        rest_video.router,  # /livestreams/agora/token, before /livestreams/{id}
        rest_livestreams.router,
        rest_flash_sales.router,
        rest_products.router,
        rest_orders.router,
        rest_payments.order_payments,
        rest_payments.router,
        rest_analytics.router,
        rest_moderation.router,
        rest_users.router,
    ]
    for router in routers:
        app.include_router(router, responses=errors.ERROR_RESPONSES)  # the one error shape, on every operation
    app.state.draining = False
    metrics = GatewayMetrics()
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    addresses = AddressCounter(settings.max_connections_per_ip)
    allowed_origins = settings.origin_allow_list()

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, object]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Ready for traffic: 200 while this gateway can serve (its live-stream directory is in
        sync with the cluster, and it is not draining), else 503 (`starting`, `draining`).

        The shared dependencies are reported, not judged: the database (a ping within
        READY_DB_PING_S) and the stream registry (one within `REGISTRY_CHECK_S`), checked at once,
        each `ok` or `unavailable`, with `status: degraded` while one is down, and in
        `wrencos_dependency_up`. They are shared by every gateway, so failing readiness on them would
        take every gateway out of the load balancer at once and turn a partial outage (no REST
        writes, no go-lives) into a total one (nobody can even watch)."""
        ctx: GatewayContext = app.state.ctx
        database_ok, registry_ok = await asyncio.gather(
            ping(app.state.db, READY_DB_PING_S), ctx.directory.registry_answers()
        )
        ctx.metrics.dependency_up.labels("database").set(1 if database_ok else 0)
        ctx.metrics.dependency_up.labels("registry").set(1 if registry_ok else 0)
        serving = ctx.directory.synced.is_set() and not app.state.draining
        if not serving:
            status = "draining" if app.state.draining else "starting"
        else:
            status = "ready" if database_ok and registry_ok else "degraded"
        body = {
            "database": "ok" if database_ok else "unavailable",
            "registry": "ok" if registry_ok else "unavailable",
            "status": status,
            "gatewayId": ctx.gateway_id,
            "nodeId": ctx.node_id,
            "connections": len(ctx.hub.connections),
            "liveStreams": len(ctx.directory.live),
        }
        return JSONResponse(body, status_code=200 if serving else 503)

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={**errors.ERROR_RESPONSES, 200: {"content": {METRICS_CONTENT_TYPE: {"schema": {"type": "string"}}}}},
    )
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus metrics of this gateway: connections, live streams, events in and out,
        fan-out latency, actor call latency and errors (see docs/operations.md, "What to watch"). With
        `METRICS_TOKEN` set, only for `Authorization: Bearer <METRICS_TOKEN>`."""
        if metrics_token is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), f"Bearer {metrics_token}".encode()
        ):
            raise errors.ApiError(401, "Metrics need 'Authorization: Bearer <METRICS_TOKEN>'")
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    protocol_document = asyncapi.document()

    @app.get("/asyncapi.json", tags=["ops"], include_in_schema=False)
    async def asyncapi_json(request: Request) -> JSONResponse:
        """The WebSocket protocol as an AsyncAPI 3 document (`gateway/realtime/asyncapi.py`), naming this host."""
        server = {**protocol_document["servers"]["gateway"], "host": request.headers.get("host", "localhost")}
        return JSONResponse({**protocol_document, "servers": {"gateway": server}})

    async def drain() -> None:
        """Stop taking connections and move the open ones on (see the module docstring)."""
        if app.state.draining:
            return
        app.state.draining = True
        ctx: GatewayContext = app.state.ctx
        log.info(
            "gateway_draining",
            gateway_id=ctx.gateway_id,
            connections=len(ctx.hub.connections),
            notice_s=settings.drain_notice_seconds,
            spread_s=settings.drain_seconds,
        )
        await asyncio.sleep(settings.drain_notice_seconds)
        conns = list(ctx.hub.connections)
        waves = max(1, min(len(conns), int(settings.drain_seconds * DRAIN_WAVES_PER_SECOND)))
        for i in range(waves):
            ctx.hub.write_all()  # what is waiting for a tick goes out before the close
            ctx.hub.flush_all()
            for conn in conns[i::waves]:
                conn.close(CLOSE_SERVICE_RESTART, "gateway draining: reconnect")
            if i + 1 < waves:
                await asyncio.sleep(settings.drain_seconds / waves)
        log.info("gateway_drained", gateway_id=ctx.gateway_id, closed=len(conns))

    app.state.drain = drain

    async def websocket_endpoint(websocket: WebSocket) -> None:
        """One app connection. Refused before anything else: a browser `Origin`
        not on `ALLOWED_ORIGINS` (403 at the handshake), a gateway shutting down
        (1012), more than `MAX_CONNECTIONS_PER_IP` open from one address (1013,
        after an error frame saying why). Closed: a connection that does not
        register within `WS_REGISTER_TIMEOUT_SECONDS` (1008), one that watches
        nothing and sends nothing for `WS_IDLE_TIMEOUT_SECONDS` (1001)."""
        ctx: GatewayContext = app.state.ctx
        if not origin_allowed(allowed_origins, websocket.headers.get("origin")):
            log.info("ws_origin_refused", origin=websocket.headers.get("origin", "")[:200])
            await websocket.close(CLOSE_POLICY_VIOLATION)  # before accept: HTTP 403
            return
        address = websocket.client.host if websocket.client else "unknown"
        if app.state.draining:
            await websocket.accept()
            await websocket.close(CLOSE_SERVICE_RESTART, "gateway draining: reconnect")
            return
        if not addresses.acquire(address):
            await websocket.accept()
            await websocket.send_text(
                error_frame(
                    f"Too many connections from your address (at most {addresses.limit}): close some and retry",
                    code="too_many_connections",
                )
            )
            await websocket.close(CLOSE_TRY_AGAIN_LATER, "too many connections from your address")
            return
        try:
            await websocket.accept()
            await _serve_socket(websocket, ctx)
        finally:
            addresses.release(address)

    async def _serve_socket(websocket: WebSocket, ctx: GatewayContext) -> None:
        conn = Connection(websocket, ctx.settings.send_queue_frames)
        ctx.hub.add(conn)
        writer = asyncio.create_task(conn.run_writer())
        session = WsSession(conn, ctx)
        register_timeout = settings.ws_register_timeout_seconds
        idle_timeout = settings.ws_idle_timeout_seconds
        try:
            while not conn.closed:
                registered = conn.session_id is not None or conn.is_admin
                if not registered:
                    timeout: float | None = register_timeout if register_timeout > 0 else None
                elif conn.watching is None and not conn.is_admin:
                    timeout = idle_timeout if idle_timeout > 0 else None
                else:
                    timeout = None  # a viewer watches silently: uvicorn's pings tell if it is gone
                try:
                    message = await asyncio.wait_for(websocket.receive(), timeout)
                except TimeoutError:
                    if registered:
                        conn.close(CLOSE_GOING_AWAY, f"idle for {idle_timeout:g} s")
                    else:
                        conn.send(
                            error_frame(
                                f"Register within {register_timeout:g} s of connecting", code="register_timeout"
                            )
                        )
                        conn.close(CLOSE_POLICY_VIOLATION, "no register in time")
                    break
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    if session.allow_frame():
                        conn.send(error_frame("Binary frames are not supported: send JSON text", code="bad_frame"))
                    continue
                await session.handle_text(text)
        except WebSocketDisconnect:
            pass
        except Exception:
            log.exception("ws_handler_failed", conn=conn.id)
        finally:
            session.closed()
            conn.close()
            try:
                await asyncio.wait_for(writer, 1.0)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()

    # Plain Starlette routes: FastAPI's dependency resolution per connection
    # showed up in profiles of connection storms, and these routes need none.
    app.router.routes.append(WebSocketRoute("/", websocket_endpoint))
    app.router.routes.append(WebSocketRoute("/ws", websocket_endpoint))
    # The document FastAPI builds (and caches, so /openapi.json serves this one), with the links
    # from created resources to what takes their ids (create -> read -> update -> delete, order -> pay).
    rest_links.add_links(app.openapi())
    return app


DOCS_ASSETS = "/docs/assets"


def _install_docs(app: FastAPI) -> None:
    """Swagger UI at `/docs`, its scripts, style sheet and icon at `/docs/assets/` from the
    `swagger-ui-bundle-v2` package: the page needs nothing outside this gateway."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="docs-assets")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API",
            oauth2_redirect_url=oauth2_redirect,
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
