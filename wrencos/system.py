"""Starting and stopping the parts of the system in one process tree.

`run_system` is what `make run` (`wrencos run`) does on one machine: the
embedded database (unless `MONGODB_URI` is set), a local Ray instance (unless
`RAY_ADDRESS` is set), the stream registry, and one gateway on `PORT`.
`run_gateway` is one more gateway joining a running cluster (`wrencos gateway`).

Ctrl-C or SIGTERM stops the gateway (clients are told it is going away), asks
every live stream to store what it holds, then stops Ray and the database.
"""

from __future__ import annotations

import asyncio
import faulthandler
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import ray
import structlog
import uvicorn
import uvloop

from actors import placement
from actors.call_policy import LoggedCalls
from actors.config import ActorConfig
from actors.registry_client import RegistryClient
from actors.registry_lifecycle import ensure_registry
from gateway.app import create_app, database_config
from gateway.transport.uvicorn_adapter import FanoutWebSocketProtocol
from persistence.database import connect, ping
from persistence.embedded import EmbeddedMongo
from runtime.logs import configure, resolved_format
from runtime.settings import ConfigError, Settings
from wrencos.admin_accounts import missing_admin_hint
from wrencos.local_database import published
from wrencos.preflight import DataDirLock, check_port_free, check_reachable, wait_for_mongodb
from wrencos.process_tree import become_subreaper, raise_on_sigterm, stop_descendants

log = structlog.get_logger("wrencos.system")
MONGODB_PING_S = 2.0  # each start-up ping of an external MongoDB
RAY_CONNECT_S = 5.0  # a cluster address that accepts no connection within this is reported at once


def actor_config(settings: Settings, uri: str) -> ActorConfig:
    return ActorConfig(
        db=database_config(settings, uri),
        history_size=settings.chat_history_size,
        update_interval=settings.update_interval_ms / 1000,
        commit_interval=settings.commit_interval_ms / 1000,
        prewarm_seconds=settings.prewarm_seconds,
        go_live_timeout=settings.go_live_timeout_seconds,
        log_level=settings.log_level,
        log_format=resolved_format(settings.log_format),  # actors' lines in the same format as this process's
    )


class _Server(uvicorn.Server):
    """uvicorn's server, with two changes. The first SIGTERM or Ctrl-C drains
    the gateway (`app.state.drain`: no new connections, open ones moved on in
    waves) before uvicorn's own graceful shutdown; a second one skips the rest
    of the drain. And a signal handled gracefully is not raised again
    afterwards: the shutdown was clean, so the process goes on to store the
    streams and stop what it started, then exits 0."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_requested = False
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        if not self._drain_requested and self._loop is not None and self.started:
            self._drain_requested = True
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        async def drain_then_exit() -> None:
            try:
                await self._drain()
            finally:
                self.should_exit = True

        self._draining = asyncio.get_running_loop().create_task(drain_then_exit())

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _serve(settings: Settings, uri: str, secret: str, banner: str, gateway_id: str) -> None:
    app = create_app(settings, uri, secret, gateway_id)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        log_config=None,
        ws=FanoutWebSocketProtocol,
        ws_per_message_deflate=False,
        ws_max_size=settings.max_frame_bytes,
        # uvicorn pings every socket; one that does not answer in time is closed (1011).
        ws_ping_interval=settings.ws_ping_interval_seconds or None,
        ws_ping_timeout=settings.ws_ping_timeout_seconds or None,
        timeout_graceful_shutdown=5,
        access_log=False,
    )
    server = _Server(config, app.state.drain)

    async def main() -> None:
        async def announce() -> None:
            while not server.started:
                if server.should_exit:
                    return
                await asyncio.sleep(0.05)
            print(banner.format(host=settings.host, port=settings.port), flush=True)

        task = asyncio.create_task(announce())
        await server.serve()
        task.cancel()

    # uvloop: the fan-out is one socket write per viewer, and uvloop's transports
    # make each of those several times cheaper than asyncio's own (measured).
    uvloop.run(main())


def run_system(settings: Settings) -> int:
    """The whole system on this machine until Ctrl-C or SIGTERM; the exit code. Interrupted at
    any moment, start-up included, it stops every process it started (`wrencos.process_tree`)."""
    configure(settings.log_level, settings.log_format)
    # `kill -USR1 PID` writes every thread's stack to stderr (the log): where a run that seems stuck waits.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    become_subreaper()
    raise_on_sigterm()
    lock = DataDirLock(settings.data_dir)
    try:
        check_port_free(settings.host, settings.port)
        lock.acquire()
        if settings.mongodb_uri:
            _wait_for_database(settings, settings.mongodb_uri)
        return _run_system(settings)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: stopping what was started", file=sys.stderr)
        return 130
    finally:
        stop_descendants()
        lock.release()


def _run_system(settings: Settings) -> int:
    with ExitStack() as stack:
        if settings.mongodb_uri:
            uri = settings.mongodb_uri
        else:
            db = EmbeddedMongo(settings.data_dir, port=settings.db_port)
            stack.enter_context(db)
            uri = db.uri
            stack.enter_context(published(settings.data_dir, uri))  # for `wrencos admin create` meanwhile
        secret = settings.resolved_jwt_secret()
        settings.previous_jwt_secrets()
        ray.init(
            address=settings.ray_address or "local",
            namespace=settings.ray_namespace,
            # A local Ray offers every resource on its one node; a cluster's nodes say what they offer.
            resources=placement.SINGLE_NODE_RESOURCES if not settings.ray_address else None,
            include_dashboard=False,
            configure_logging=False,
            log_to_driver=True,
        )
        stack.callback(ray.shutdown)
        placed = _place_gateway(settings, uri)
        if placed is None:
            return 2
        gateway_id, registry = placed
        live = asyncio.run(registry.live(timeout_s=120))
        log.info(
            "system_ready", live_streams=len(live.live), database="external" if settings.mongodb_uri else "embedded"
        )
        hint = missing_admin_hint(settings, uri)
        if hint is not None:
            print(hint, flush=True)
        try:
            _serve(
                settings,
                uri,
                secret,
                "WrenCOS Live listening on http://{host}:{port} (REST) and ws://{host}:{port}/ws (WebSocket)",
                gateway_id,
            )
        finally:
            try:
                stored = asyncio.run(registry.flush_all(timeout_s=15))
                log.info("streams_stored", streams=stored)
            except Exception as e:  # noqa: BLE001 - on the way out: a failed final store is logged, the exit goes on
                log.error("store_on_shutdown_failed", error=repr(e))
    return 0


def _wait_for_database(settings: Settings, uri: str) -> None:
    """Wait for an external MongoDB before starting anything, saying so every few seconds
    on one short line; ConfigError once MONGODB_WAIT_SECONDS have passed."""
    config = database_config(settings, uri)

    async def ping_once() -> bool:
        db = connect(config)
        try:
            return await ping(db, MONGODB_PING_S)
        finally:
            await db.client.close()

    wait_for_mongodb(
        uri,
        lambda: asyncio.run(ping_once()),
        lambda line: print(line, file=sys.stderr, flush=True),
        timeout_s=settings.mongodb_wait_seconds,
    )


def run_gateway(settings: Settings, ray_address: str | None) -> int:
    configure(settings.log_level, settings.log_format)
    if not settings.mongodb_uri:
        print("error: a gateway joining a cluster needs MONGODB_URI (the cluster's database)", file=sys.stderr)
        return 2
    try:
        secret = settings.resolved_jwt_secret()
        settings.previous_jwt_secrets()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    address = ray_address or settings.ray_address or "auto"
    if not _join_cluster(
        address,
        namespace=settings.ray_namespace,
        configure_logging=False,
        log_to_driver=False,
        _temp_dir=settings.ray_temp_dir or None,  # None: Ray's default
    ):
        return 2
    try:
        placed = _place_gateway(settings, settings.mongodb_uri)
        if placed is None:
            return 2
        gateway_id, registry = placed
        asyncio.run(registry.live(timeout_s=120))  # the registry has loaded
        node = ray.get_runtime_context().get_node_id()
        _serve(
            settings,
            settings.mongodb_uri,
            secret,
            "WrenCOS gateway "
            + gateway_id
            + " listening on http://{host}:{port} (cluster "
            + address
            + ", node "
            + node[:12]
            + ")",
            gateway_id,
        )
    finally:
        ray.shutdown()
    return 0


def show_status(settings: Settings, ray_address: str | None, as_json: bool) -> int:
    import logging

    from wrencos.status import cluster_status, print_status

    address = ray_address or settings.ray_address or "auto"
    if not _join_cluster(
        address,
        namespace=settings.ray_namespace,
        configure_logging=False,
        log_to_driver=False,
        logging_level=logging.ERROR,
    ):
        return 2
    try:
        print_status(cluster_status(), as_json)
    finally:
        ray.shutdown()
    return 0


def _join_cluster(address: str, **init: Any) -> bool:
    """`ray.init(address=...)`; False, after one line saying what to do, when no cluster answers there."""
    where = "on this machine" if address == "auto" else f"at {address}"
    try:
        if address != "auto":
            # Ray retries an address that does not answer for minutes; a plain connect says at once.
            check_reachable(address, RAY_CONNECT_S)
        ray.init(address=address, **init)
    except (ConnectionError, RuntimeError, ValueError) as e:
        # Ray's own message can be a page long; its first line says what happened.
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        print(
            f"error: no Ray cluster answers {where} ({reason}); start one (`wrencos run` or `ray start --head`) "
            "or give its address with --address or RAY_ADDRESS",
            file=sys.stderr,
        )
        return False
    return True


def _place_gateway(settings: Settings, uri: str) -> tuple[str, RegistryClient] | None:
    """This gateway's id and the cluster's registry, once the cluster has room
    for streams and this node a `gateway` seat for this process; None (after
    saying what to start) if not."""
    gateway_id = f"gw-{secrets.token_hex(4)}"
    try:
        placement.check_cluster_resources()
        placement.reserve_gateway_seat(gateway_id)
    except placement.PlacementError as e:
        print(f"error: {e}", file=sys.stderr)
        return None
    return gateway_id, RegistryClient(ensure_registry(actor_config(settings, uri)), LoggedCalls())
