"""Every setting, from the environment (or a `.env` file), in one place.

`Settings()` reads them; `docs/configuration.md` lists them.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_BYTES = 32
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Every password's length, a customer's and an admin's alike (gateway/rest/auth.py `Password`,
# ADMIN_PASSWORD here, `wrencos admin create`).
PASSWORD_LENGTH = (8, 128)


def password_length_problem(password: str) -> str | None:
    """None if `password` is as long as every password must be; else the rule and what it got."""
    low, high = PASSWORD_LENGTH
    if low <= len(password) <= high:
        return None
    return f"{low} to {high} characters long (as a customer's), got {len(password)}"


# What a value takes, where pydantic's own words ("less than or equal to 65535") say only half of it.
TAKES = {"PORT": "a port number from 1 to 65535", "WRENCOS_DB_PORT": "a port number from 1 to 65535"}


class ConfigError(Exception):
    """A setting is missing or wrong; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    host: str = Field("0.0.0.0", alias="HOST")
    port: int = Field(3000, ge=1, le=65535, alias="PORT")
    data_dir: Path = Field(Path("./data"), alias="WRENCOS_DATA_DIR")
    mongodb_uri: str | None = Field(None, alias="MONGODB_URI")
    mongodb_db: str = Field("wrencos", alias="MONGODB_DB")
    mongodb_write_concern: str = Field("majority", alias="MONGODB_WRITE_CONCERN")
    # `wrencos run` with MONGODB_URI waits this long for the database to answer before it gives up.
    mongodb_wait_seconds: float = Field(60.0, gt=0, alias="MONGODB_WAIT_SECONDS")
    db_port: int | None = Field(None, ge=1, le=65535, alias="WRENCOS_DB_PORT")
    ray_address: str | None = Field(None, alias="RAY_ADDRESS")
    ray_namespace: str = Field("wrencos", alias="WRENCOS_NAMESPACE")
    # Several Ray nodes on one host (tests, demos) each have their own temp dir; a gateway
    # attaches to the node whose temp dir this names. Unset on a real cluster (one node per host).
    ray_temp_dir: str | None = Field(None, alias="WRENCOS_RAY_TEMP_DIR")
    jwt_secret: str | None = Field(None, alias="JWT_SECRET")
    jwt_ttl_seconds: int = Field(7 * 24 * 3600, gt=0, alias="JWT_TTL_SECONDS")  # every token expires
    jwt_previous_secrets: str = Field("", alias="JWT_PREVIOUS_SECRETS")  # comma-separated, verification only
    admin_email: str | None = Field(None, alias="ADMIN_EMAIL")
    admin_password: str | None = Field(None, alias="ADMIN_PASSWORD")  # the customers' rule: 8 to 128 characters
    log_format: Literal["auto", "json", "console"] = Field("auto", alias="LOG_FORMAT")
    log_level: str = Field("info", alias="LOG_LEVEL")  # debug | info | warning | error | critical
    chat_history_size: int = Field(50, ge=0, alias="CHAT_HISTORY_SIZE")
    update_interval_ms: int = Field(250, gt=0, alias="UPDATE_INTERVAL_MS")
    commit_interval_ms: int = Field(20, ge=0, alias="COMMIT_INTERVAL_MS")
    # The gateway's fan-out ticks (`gateway/streams/hub.py`): at most one socket write per old app,
    # and one batch frame per opted-in app, per this many ms; a quiet stream's events go at once.
    write_interval_ms: int = Field(40, ge=0, alias="WRITE_INTERVAL_MS")
    batch_interval_ms: int = Field(100, ge=0, alias="BATCH_INTERVAL_MS")
    max_frame_bytes: int = Field(64 * 1024, gt=0, alias="MAX_FRAME_BYTES")
    send_queue_frames: int = Field(1024, gt=0, alias="SEND_QUEUE_FRAMES")
    agora_app_id: str | None = Field(None, alias="AGORA_APP_ID")
    agora_app_certificate: SecretStr | None = Field(None, alias="AGORA_APP_CERTIFICATE")  # never shown
    agora_token_ttl_seconds: int = Field(3600, gt=0, alias="AGORA_TOKEN_TTL_SECONDS")
    shop_currency: str = Field("USD", alias="SHOP_CURRENCY")
    shop_name: str = Field("WrenCOS Live", alias="SHOP_NAME")  # a guest may not chat under it (core/chat_names.py)
    login_rate_per_minute: int = Field(10, ge=0, alias="LOGIN_RATE_PER_MINUTE")  # per (client IP, email); 0 = off
    order_rate_per_minute: int = Field(30, ge=0, alias="ORDER_RATE_PER_MINUTE")  # per account; 0 = off
    signup_rate_per_minute: int = Field(10, ge=0, alias="SIGNUP_RATE_PER_MINUTE")  # per client IP; 0 = off
    # Argon2 runs in this many threads, off the event loop; at most PASSWORD_HASH_QUEUE more calls
    # wait for one, beyond which a login or sign-up is answered 429 with Retry-After at once.
    password_hash_workers: int = Field(2, ge=1, alias="PASSWORD_HASH_WORKERS")
    password_hash_queue: int = Field(16, ge=0, alias="PASSWORD_HASH_QUEUE")
    # A `creating` order older than this was stranded by a gateway that died placing it: every
    # gateway's sweeper gives its stock back (once), checking every ORDER_SWEEP_INTERVAL_SECONDS.
    # The saga itself gives up at half this time.
    order_creating_timeout_seconds: float = Field(60.0, gt=0, alias="ORDER_CREATING_TIMEOUT_SECONDS")
    order_sweep_interval_seconds: float = Field(10.0, gt=0, alias="ORDER_SWEEP_INTERVAL_SECONDS")
    # For tests only, never set in production (0 = off): the order saga waits this long after
    # taking its stock, before confirming, so a test can kill the gateway mid-order.
    test_order_hold_seconds: float = Field(0.0, ge=0, alias="WRENCOS_TEST_ORDER_HOLD_SECONDS")
    # Every REST request is answered within this: a handler still waiting (on a slow or absent
    # dependency) is cancelled and the client gets 503 with Retry-After (gateway/transport/deadline.py).
    # Above every dependency's own bound (database 5 s, actor calls), so it is only ever the backstop.
    rest_deadline_seconds: float = Field(30.0, gt=0, alias="REST_DEADLINE_SECONDS")
    # Scheduled streams get their actor started this long ahead (0 = off); a go-live that finds no stream
    # capacity waits at most GO_LIVE_TIMEOUT_SECONDS (README "Operating a cluster").
    prewarm_seconds: float = Field(120.0, ge=0, alias="PREWARM_SECONDS")
    go_live_timeout_seconds: float = Field(60.0, gt=0, alias="GO_LIVE_TIMEOUT_SECONDS")
    # WebSocket abuse limits (per connection unless said otherwise; 0 turns a limit off).
    ws_chat_rate_per_second: float = Field(5.0, ge=0, alias="WS_CHAT_RATE_PER_SECOND")
    ws_chat_burst: int = Field(10, ge=0, alias="WS_CHAT_BURST")
    ws_like_rate_per_second: float = Field(20.0, ge=0, alias="WS_LIKE_RATE_PER_SECOND")
    ws_like_burst: int = Field(40, ge=0, alias="WS_LIKE_BURST")
    ws_frame_rate_per_second: float = Field(100.0, ge=0, alias="WS_FRAME_RATE_PER_SECOND")  # any frame
    ws_frame_burst: int = Field(200, ge=0, alias="WS_FRAME_BURST")
    ws_register_timeout_seconds: float = Field(30.0, ge=0, alias="WS_REGISTER_TIMEOUT_SECONDS")
    ws_idle_timeout_seconds: float = Field(300.0, ge=0, alias="WS_IDLE_TIMEOUT_SECONDS")
    ws_ping_interval_seconds: float = Field(20.0, ge=0, alias="WS_PING_INTERVAL_SECONDS")
    ws_ping_timeout_seconds: float = Field(20.0, ge=0, alias="WS_PING_TIMEOUT_SECONDS")
    allowed_origins: str = Field("", alias="ALLOWED_ORIGINS")  # comma-separated; empty = any
    # Mobile carriers put many customers behind one address (carrier-grade NAT): keep this generous.
    max_connections_per_ip: int = Field(500, ge=0, alias="MAX_CONNECTIONS_PER_IP")

    # Draining a gateway (SIGTERM): /ready turns 503 at once, then after DRAIN_NOTICE_SECONDS (let the
    # load balancer notice) its connections are closed with 1012 in waves over DRAIN_SECONDS, so their
    # apps reconnect elsewhere without all arriving at once. A second SIGTERM stops at once.
    drain_notice_seconds: float = Field(0.0, ge=0, alias="DRAIN_NOTICE_SECONDS")
    drain_seconds: float = Field(5.0, ge=0, alias="DRAIN_SECONDS")

    # When set, GET /metrics needs `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' `authorization`).
    metrics_token: SecretStr | None = Field(None, alias="METRICS_TOKEN")
    # A gateway with no viewer (and no admin) of a stream for this long stops following it.
    relay_idle_seconds: float = Field(10.0, gt=0, alias="RELAY_IDLE_SECONDS")
    # Commands (each like tap counted) a gateway queues toward one stream's actor; beyond it new ones
    # are refused with `busy` and retryAfter (gateway/streams/stream_relay.py OUTBOX_MAX_COMMANDS).
    relay_outbox_max_commands: int = Field(50_000, gt=0, alias="RELAY_OUTBOX_MAX_COMMANDS")
    # Freeze what startup made out of the garbage collector's reach and collect young objects less
    # often (runtime/gc_policy.py): shorter event-loop pauses under load. Off only to compare.
    gc_freeze: bool = Field(True, alias="GATEWAY_GC_FREEZE")

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        if value.lower() not in LOG_LEVELS:
            raise ValueError(f"should be one of {', '.join(LOG_LEVELS)}")
        return value.lower()

    @field_validator("admin_password")
    @classmethod
    def _admin_password_rule(cls, value: str | None) -> str | None:
        problem = None if value is None else password_length_problem(value)
        if problem is not None:
            raise ValueError(f"should be {problem}")
        return value

    def origin_allow_list(self) -> frozenset[str]:
        """`ALLOWED_ORIGINS` as a set of lower-case origins (empty: any origin)."""
        return frozenset(o.strip().rstrip("/").lower() for o in self.allowed_origins.split(",") if o.strip())

    def previous_jwt_secrets(self) -> tuple[str, ...]:
        """`JWT_PREVIOUS_SECRETS`: still accepted for verification during a rotation.
        Each must be as long as a current secret must be."""
        olds = tuple(s.strip() for s in self.jwt_previous_secrets.split(",") if s.strip())
        for old in olds:
            if len(old.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(f"every secret in JWT_PREVIOUS_SECRETS must be at least {MIN_SECRET_BYTES} bytes")
        return olds

    def resolved_jwt_secret(self) -> str:
        """`JWT_SECRET`, or, with the embedded database, a strong secret made
        once and kept in the data directory (mode 0600)."""
        if self.jwt_secret:
            if len(self.jwt_secret.encode()) < MIN_SECRET_BYTES:
                raise ConfigError(
                    f"JWT_SECRET is shorter than {MIN_SECRET_BYTES} bytes; "
                    "make one with: python -c 'import secrets; print(secrets.token_urlsafe(48))'"
                )
            return self.jwt_secret
        if self.mongodb_uri:
            raise ConfigError("JWT_SECRET must be set when MONGODB_URI is set (every gateway needs the same one)")
        path = self.data_dir / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_urlsafe(48)
        path.touch(mode=0o600)
        path.write_text(secret)
        return secret


def load_settings(**overrides: Any) -> Settings:
    """`Settings(**overrides)`, every value checked at once: a wrong one raises a ConfigError
    whose message has one line per wrong value, naming the variable, what it got and what it
    takes (never pydantic's traceback)."""
    try:
        return Settings(**overrides)
    except ValidationError as e:
        raise ConfigError("\n".join(_one_line(error) for error in e.errors())) from None


def _one_line(error: Any) -> str:
    """One pydantic error as `NAME=VALUE is not valid: it should be ...`."""
    name = str(error["loc"][0]) if error.get("loc") else "a setting"
    field = Settings.model_fields.get(name)
    if field is not None and field.alias:
        name = field.alias  # the environment variable, not the Python attribute
    got = "ADMIN_PASSWORD=(hidden)" if name == "ADMIN_PASSWORD" else f"{name}={error.get('input')!s}"
    takes = TAKES.get(name) or str(error.get("msg", "")).removeprefix("Value error, ").removeprefix("Input should be ")
    takes = takes if takes.startswith("should") else f"should be {takes}"
    return f"{got} is not valid: it {takes}"
