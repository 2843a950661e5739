"""Everything one gateway process shares between its requests and sockets:
its stores, its live directory, and the services that hold the rules both
REST and the WebSocket follow (built from the stores, once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.metrics import GatewayMetrics
from gateway.security.credentials import TokenService
from gateway.security.password_pool import PasswordPool
from gateway.security.ratelimit import TokenBucket
from gateway.services.checkout import CheckoutService
from gateway.services.live_numbers import LiveNumbersCache
from gateway.services.moderation import ModerationService
from gateway.services.order_sweeper import OrderSweeper
from gateway.services.orders import OrderService
from gateway.services.payments import OfflineProvider, PaymentProvider
from gateway.services.pins import PinService
from gateway.services.stream_commands import LiveStreams
from gateway.streams.hub import Hub
from gateway.streams.live_directory import LiveDirectory
from persistence.analytics import AnalyticsStore
from persistence.chat import ChatStore
from persistence.chat_pages import ChatPages
from persistence.flash_sales import FlashSaleStore
from persistence.orders import OrderStore
from persistence.payments import PaymentStore
from persistence.products import ProductStore
from persistence.streams import StreamStore
from persistence.users import UserStore
from persistence.views import ViewStore
from runtime.settings import Settings


@dataclass
class GatewayContext:
    settings: Settings
    gateway_id: str
    tokens: TokenService
    users: UserStore
    streams: StreamStore
    chat: ChatStore
    hub: Hub
    directory: LiveDirectory
    # Commerce, analytics and limits (REST).
    products: ProductStore
    orders: OrderStore
    payments: PaymentStore
    flash_sales: FlashSaleStore
    views: ViewStore
    analytics: AnalyticsStore
    chat_pages: ChatPages
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    node_id: str = ""  # the Ray node this gateway runs on
    payment_provider: PaymentProvider = field(default_factory=OfflineProvider)
    login_limit: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    order_limit: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    signup_limit: TokenBucket = field(default_factory=lambda: TokenBucket(0))
    passwords: PasswordPool = field(default_factory=PasswordPool)  # Argon2, off the event loop
    # The rules, one implementation each for REST and the WebSocket.
    pins: PinService = field(init=False)
    moderation: ModerationService = field(init=False)
    order_service: OrderService = field(init=False)
    checkout: CheckoutService = field(init=False)
    order_sweeper: OrderSweeper = field(init=False)  # started and stopped by the app
    live_numbers: LiveNumbersCache = field(init=False)  # REST live numbers of streams this gateway does not follow

    def __post_init__(self) -> None:
        live = LiveStreams(self.directory, self.streams)
        self.pins = PinService(self.products, live)
        self.moderation = ModerationService(live)
        self.order_service = OrderService(
            self.orders,
            self.products,
            self.flash_sales,
            self.payments,
            self.streams,
            self.directory,
            self.settings.shop_currency,
            saga_deadline_seconds=self.settings.order_creating_timeout_seconds / 2,
            test_hold_seconds=self.settings.test_order_hold_seconds,
        )
        self.checkout = CheckoutService(self.order_service, self.orders, self.payments, self.payment_provider)
        self.order_sweeper = OrderSweeper(
            self.orders,
            self.products,
            self.flash_sales,
            timeout_seconds=self.settings.order_creating_timeout_seconds,
            interval_seconds=self.settings.order_sweep_interval_seconds,
            name=self.gateway_id,
        )
        self.live_numbers = LiveNumbersCache()
