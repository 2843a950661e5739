"""The gateway's FastAPI application: REST routes, the WebSocket endpoint at
`/` and `/ws`, health endpoints, and the start-up and shut-down around them.

`create_app(settings)` expects Ray to be initialised in this process (the
command line does that) and a `StreamRegistry` to exist in the cluster.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from typing import AsyncIterator

import structlog
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.routing import WebSocketRoute
from fastapi.responses import JSONResponse

from gateway import errors, rest_analytics, rest_auth, rest_commerce, rest_flash_sales, rest_livestreams, rest_video
from gateway.auth import TokenService, hash_password
from gateway.connection import CLOSE_GOING_AWAY, Connection
from gateway.context import GatewayContext
from gateway.hub import Hub
from gateway.live_directory import LiveDirectory
from gateway.protocol import error_frame
from gateway.ratelimit import TokenBucket
from gateway.ws_session import WsSession
from persistence.analytics import AnalyticsStore
from persistence.chat import ChatStore
from persistence.chat_pages import ChatPages
from persistence.flash_sales import FlashSaleStore
from persistence.orders import OrderStore
from persistence.payments import PaymentStore
from persistence.products import ProductStore
from persistence.views import ViewStore
from persistence.database import DatabaseConfig, connect, ensure_indexes
from persistence.streams import StreamStore
from persistence.users import UserStore
from wrencos import __version__
from wrencos.settings import Settings

log = structlog.get_logger("gateway.app")


def database_config(settings: Settings, uri: str) -> DatabaseConfig:
    return DatabaseConfig(uri=uri, name=settings.mongodb_db, write_concern=settings.mongodb_write_concern)


def create_app(settings: Settings, mongodb_uri: str, jwt_secret: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = connect(database_config(settings, mongodb_uri))
        await ensure_indexes(db)
        users = UserStore(db)
        if settings.admin_email and settings.admin_password:
            await users.ensure_admin(settings.admin_email, hash_password(settings.admin_password))
            log.info("admin_ensured", email=settings.admin_email)
        hub = Hub()
        gateway_id = f"gw-{secrets.token_hex(4)}"
        directory = LiveDirectory(hub, gateway_id, settings.chat_history_size)
        app.state.ctx = GatewayContext(
            settings=settings, gateway_id=gateway_id,
            tokens=TokenService(jwt_secret, settings.jwt_ttl_seconds),
            users=users, streams=StreamStore(db), chat=ChatStore(db), hub=hub, directory=directory,
            products=ProductStore(db), orders=OrderStore(db), payments=PaymentStore(db),
            flash_sales=FlashSaleStore(db), views=ViewStore(db), analytics=AnalyticsStore(db),
            chat_pages=ChatPages(db), login_limit=TokenBucket(settings.login_rate_per_minute),
            order_limit=TokenBucket(settings.order_rate_per_minute),
        )
        directory.start()
        try:
            await asyncio.wait_for(directory.synced.wait(), 30)
        except TimeoutError:
            log.warning("registry_not_synced", hint="is the StreamRegistry actor running?")
        log.info("gateway_ready", gateway_id=gateway_id, version=__version__)
        yield
        for conn in list(hub.connections):
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        await directory.leave_all()
        await directory.close()
        await db.client.close()
        log.info("gateway_stopped", gateway_id=gateway_id)

    app = FastAPI(
        title="WrenCOS Live", version=__version__, lifespan=lifespan,
        description="Realtime backend for live shopping: REST beside the WebSocket at `/` and `/ws`.",
    )
    errors.install(app)
    app.include_router(rest_auth.router)
    app.include_router(rest_video.router)  # /livestreams/agora/token, before /livestreams/{id}
    app.include_router(rest_livestreams.router)
    app.include_router(rest_flash_sales.router)
    app.include_router(rest_commerce.products)
    app.include_router(rest_commerce.orders)
    app.include_router(rest_commerce.payments)
    app.include_router(rest_analytics.router)

    @app.get("/health", tags=["ops"])
    async def health() -> dict[str, object]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["ops"])
    async def ready() -> JSONResponse:
        """Ready for traffic: the live-stream directory is in sync with the cluster."""
        ctx: GatewayContext = app.state.ctx
        ok = ctx.directory.synced.is_set()
        body = {"status": "ready" if ok else "starting", "gatewayId": ctx.gateway_id,
                "connections": len(ctx.hub.connections), "liveStreams": len(ctx.directory.live)}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def websocket_endpoint(websocket: WebSocket) -> None:
        ctx: GatewayContext = app.state.ctx
        await websocket.accept()
        conn = Connection(websocket, ctx.settings.send_queue_frames)
        ctx.hub.add(conn)
        writer = asyncio.create_task(conn.run_writer())
        session = WsSession(conn, ctx)
        try:
            while not conn.closed:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    conn.send(error_frame("Binary frames are not supported: send JSON text"))
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
    return app
