"""The chapter's example services, written with kansoku: users, orders, data processing, payments.

Each class keeps the shape of its counterpart in the chapter (8.1 `UserService`, 8.2
`OrderService`, 8.3 `DataProcessor`, 8.4 `PaymentService`) and shows the pillar it illustrates:
audit and business logs; business metrics; per-item spans and progress logs; captured errors.
State lives in memory: the demo is about what kansoku sees, not about storage.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import kansoku
from kansoku.logs import log_database_operation, log_execution_time

__all__ = [
    "DataProcessor",
    "ItemError",
    "NotFound",
    "OrderService",
    "OutOfStock",
    "PaymentDeclined",
    "PaymentLimitExceeded",
    "PaymentService",
    "PaymentValidationError",
    "UserExists",
    "UserService",
]

log = kansoku.get_logger("kansoku.demo")


class NotFound(LookupError):
    """No such user or order."""


class UserExists(ValueError):
    """A user with this e-mail address is already registered."""


class OutOfStock(ValueError):
    """An order asks for more units than are in stock."""


class PaymentValidationError(ValueError):
    """The payment request is invalid (the chapter's ValueErrors)."""


class PaymentLimitExceeded(Exception):
    """The amount is over the limit (the chapter raises a bare Exception; here it has a name)."""


class PaymentDeclined(Exception):
    """The (simulated) card network declined or timed out."""


class ItemError(ValueError):
    """One dataset item cannot be processed."""


class UserService:
    """8.1: user registration, with business and audit logs and a logged database call."""

    def __init__(self, db_latency: Callable[[], float] = lambda: random.uniform(0.005, 0.03)) -> None:
        self._users: dict[str, dict[str, Any]] = {}
        self._by_email: dict[str, str] = {}
        self._db_latency = db_latency

    async def register(self, email: str, name: str, source: str = "direct") -> dict[str, Any]:
        """Register a user; `UserExists` (an expected refusal, not an error) for a known e-mail."""
        if email in self._by_email:
            log.audit("create", resource="user", result="conflict", user_email=email)
            raise UserExists(f"a user with e-mail {email} already exists")
        return await self.create_user(email, name, source)

    @log_execution_time("user_creation", category="business")
    async def create_user(self, email: str, name: str, source: str = "direct") -> dict[str, Any]:
        """The chapter's create_user: business log, the database call, business and audit logs."""
        log.info("creating user", category="business", user_email=email, registration_source=source)
        # The chapter sleeps in the event loop here; a blocking call belongs in a thread.
        user = await asyncio.to_thread(self._insert_user, email, name, source)
        kansoku.counter("demo_users_registered", "Users registered, by source.", ("source",)).labels(source).inc()
        log.business("user_registration", value=1.0, user_id=user["id"], email=email)
        log.audit("create", resource="user", result="success", resource_id=user["id"])
        return user

    @log_database_operation("insert_user", table="users")
    def _insert_user(self, email: str, name: str, source: str) -> dict[str, Any]:
        time.sleep(self._db_latency())  # the simulated database round trip
        user_id = uuid.uuid4().hex[:16]
        user = {"id": user_id, "email": email, "name": name, "source": source, "created_at": time.time()}
        self._users[user_id] = user
        self._by_email[email] = user_id
        return user

    def get_user(self, user_id: str) -> dict[str, Any]:
        """One user; `NotFound` otherwise."""
        try:
            return self._users[user_id]
        except KeyError:
            raise NotFound(f"no user {user_id}") from None


PRICES = {"keyboard": 49.0, "mouse": 19.5, "monitor": 229.0, "laptop": 1299.0, "headset": 89.0, "webcam": 59.0}
RESTOCK_LEVEL = 60


class OrderService:
    """8.2: orders, with revenue, inventory and order-value business metrics."""

    def __init__(self) -> None:
        self.stock = dict.fromkeys(PRICES, RESTOCK_LEVEL)
        self._orders: dict[str, dict[str, Any]] = {}

    @kansoku.timed("create_order", module="demo.orders")
    @kansoku.track_business_metric("demo_orders_created", labels={"channel": "api"})
    async def create_order(self, items: list[dict[str, Any]], currency: str, user_id: str | None) -> dict[str, Any]:
        """Reserve stock and record the order; `OutOfStock` when a product runs short."""
        order = await self._process_order(items, currency, user_id)
        kansoku.counter("demo_revenue", "Revenue of created orders.", ("currency",)).labels(currency).inc(
            order["amount"])
        kansoku.histogram("demo_order_value", "Order amounts.", ("currency",),
                          buckets=(10, 25, 50, 100, 250, 500, 1000, 2500, 5000)).labels(currency).observe(
            order["amount"])
        inventory = kansoku.gauge("demo_inventory_level", "Units in stock, by product.", ("product_id",),
                                  multiprocess_mode="mostrecent")
        for line in order["items"]:
            inventory.labels(line["product_id"]).set(self.stock[line["product_id"]])
        log.business("order_created", value=order["amount"], order_id=order["id"], currency=currency,
                     items=len(order["items"]))
        return order

    async def _process_order(self, items: list[dict[str, Any]], currency: str,
                             user_id: str | None) -> dict[str, Any]:
        await asyncio.sleep(random.uniform(0.005, 0.04))  # payment hold, warehouse call...
        wanted: dict[str, int] = {}
        for line in items:
            wanted[line["product_id"]] = wanted.get(line["product_id"], 0) + int(line["quantity"])
        for product, quantity in wanted.items():
            if product not in self.stock:
                raise NotFound(f"no product {product}")
            if self.stock[product] < quantity:
                log.warning("order rejected: out of stock", category="business", product_id=product,
                            wanted=quantity, in_stock=self.stock[product])
                raise OutOfStock(f"only {self.stock[product]} x {product} in stock, {quantity} wanted")
        for product, quantity in wanted.items():
            self.stock[product] -= quantity
            if self.stock[product] < 10:
                self.stock[product] = RESTOCK_LEVEL  # the warehouse restocks at once, so the demo runs forever
        lines = [{"product_id": p, "quantity": q, "remaining_stock": self.stock[p]} for p, q in wanted.items()]
        order_id = f"ord_{uuid.uuid4().hex[:12]}"
        order: dict[str, Any] = {"id": order_id, "user_id": user_id, "currency": currency, "items": lines,
                                 "amount": round(sum(PRICES[p] * q for p, q in wanted.items()), 2)}
        self._orders[order_id] = order
        return order

    def get_order(self, order_id: str) -> dict[str, Any]:
        """One order; `NotFound` otherwise."""
        try:
            return self._orders[order_id]
        except KeyError:
            raise NotFound(f"no order {order_id}") from None

    def products(self) -> list[dict[str, Any]]:
        """The catalogue with stock levels."""
        return [{"product_id": p, "price": PRICES[p], "in_stock": n} for p, n in self.stock.items()]


class DataProcessor:
    """8.3: a dataset processed item by item, one span per item, progress logs, failures skipped."""

    progress_every = 50

    @kansoku.traced(level="DETAILED")
    @kansoku.memory_profile("demo.process_dataset")
    async def process_dataset(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Process every item; a bad item is logged (and captured) and skipped."""
        log.info("processing dataset", category="performance", items=len(items))
        processed: list[dict[str, Any]] = []
        failed = 0
        for index, item in enumerate(items, start=1):
            try:
                processed.append(await self._process_item(item))
            except ItemError:
                failed += 1
                log.error("item failed", exc_info=True, item_index=index, processed_count=len(processed))
            if index % self.progress_every == 0:
                log.info("dataset progress", category="performance", processed=index, total=len(items),
                         progress_percent=round(index / len(items) * 100, 1))
        rate = round(len(processed) / len(items) * 100, 1) if items else 100.0
        log.info("dataset processed", category="performance", processed=len(processed), failed=failed,
                 success_rate=rate)
        return {"processed": len(processed), "failed": failed, "success_rate": rate, "items": processed[:10]}

    @kansoku.traced(level="VERBOSE")
    async def _process_item(self, item: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.001)
        data = item.get("data")
        if not isinstance(data, dict):
            raise ItemError(f"item {item.get('id')}: `data` must be an object, got {type(data).__name__}")
        return {"id": item.get("id"), "processed_at": time.time(), "original_size": len(str(item)),
                "processed_data": dict(data)}


class PaymentService:
    """8.4: payments whose validation and over-limit errors are captured into the error store."""

    limit = 10_000.0

    def __init__(self, decline_rate: float = 0.03) -> None:
        self.decline_rate = decline_rate

    @kansoku.track_errors(category="business_logic")
    async def process_payment(self, amount: float, card_number: str, currency: str = "USD") -> dict[str, Any]:
        """Charge a card; validation errors, over-limit and declines raise (and are recorded)."""
        if amount <= 0:
            raise PaymentValidationError("Payment amount must be positive")
        if not card_number:
            raise PaymentValidationError("Card number is required")
        if amount > self.limit:
            raise PaymentLimitExceeded(f"Payment amount {amount:.2f} {currency} exceeds limit {self.limit:.0f}")
        await asyncio.sleep(random.uniform(0.01, 0.05))  # the card network
        if random.random() < self.decline_rate:
            raise PaymentDeclined("card network timeout")
        payment_id = uuid.uuid4().hex
        log.business("payment_completed", value=amount, payment_id=payment_id, currency=currency)
        return {"payment_id": payment_id, "status": "completed", "amount": amount, "currency": currency}
