"""The demo shop: the chapter's four example services as one FastAPI app.

`create_app()` returns the app *without* kansoku, as a user's app would be; `kansoku demo`
instruments it with `kansoku.instrument(app)`, and so does `kansoku run kansoku.demo.app:create_app
--factory` (the compose file's way).

Routes: users (8.1), products and orders (8.2), data processing (8.3), payments (8.4), and a slow
report that shows slow-operation logs.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

import kansoku
from kansoku.demo.services import (
    DataProcessor,
    NotFound,
    OrderService,
    OutOfStock,
    PaymentDeclined,
    PaymentService,
    PaymentValidationError,
    UserExists,
    UserService,
)

__all__ = ["create_app"]

log = kansoku.get_logger("kansoku.demo")


class UserIn(BaseModel):
    """A registration."""

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    name: str = Field(min_length=1, max_length=100)
    source: str = Field("direct", max_length=32)


class OrderLine(BaseModel):
    """One product and quantity."""

    product_id: str = Field(max_length=64)
    quantity: int = Field(ge=1, le=1000)


class OrderIn(BaseModel):
    """An order of one or more lines."""

    items: list[OrderLine] = Field(min_length=1, max_length=20)
    currency: Literal["USD", "EUR", "JPY"] = "USD"
    channel: str = Field("api", max_length=32)
    user_id: str | None = None


class PaymentIn(BaseModel):
    """A card payment (the card number is redacted wherever kansoku records it)."""

    amount: float
    card_number: str = ""
    currency: str = Field("USD", max_length=3)


def create_app() -> FastAPI:
    """The demo app, with fresh in-memory state, not instrumented."""
    app = FastAPI(title="kansoku-demo", version=kansoku.__version__,
                  description="The chapter's example services, instrumented by kansoku.")
    users, orders, processor, payments = UserService(), OrderService(), DataProcessor(), PaymentService()
    _add_error_handlers(app)

    @app.get("/")
    async def index() -> dict[str, Any]:
        return {"service": "kansoku-demo", "docs": "/docs", "dashboard": "/kansoku/", "metrics": "/metrics",
                "routes": ["/users", "/products", "/orders", "/data/process", "/payments", "/reports/daily"]}

    # The middleware gives each request its own logging context, so fields bound in a handler
    # stay with that request's log lines, spans and error events.
    @app.post("/users", status_code=201)
    async def create_user(body: UserIn) -> dict[str, Any]:
        kansoku.bind_context(operation="create_user")
        return await users.register(body.email, body.name, body.source)

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, Any]:
        return users.get_user(user_id)

    @app.get("/products")
    async def list_products() -> list[dict[str, Any]]:
        return orders.products()

    @app.post("/orders", status_code=201)
    async def create_order(body: OrderIn) -> dict[str, Any]:
        kansoku.bind_context(operation="create_order", user_id=body.user_id, channel=body.channel)
        lines = [line.model_dump() for line in body.items]
        return await orders.create_order(lines, body.currency, body.user_id)

    @app.get("/orders/{order_id}")
    async def get_order(order_id: str) -> dict[str, Any]:
        return orders.get_order(order_id)

    @app.post("/data/process")
    async def process_data(items: list[dict[str, Any]]) -> dict[str, Any]:
        if len(items) > 5000:
            raise HTTPException(413, "at most 5000 items per request")
        return await processor.process_dataset(items)

    @app.post("/payments", status_code=201)
    async def create_payment(body: PaymentIn) -> dict[str, Any]:
        kansoku.bind_context(operation="process_payment")
        return await payments.process_payment(body.amount, body.card_number, body.currency)

    @app.get("/reports/daily")
    async def daily_report() -> dict[str, Any]:
        started = time.perf_counter()
        await asyncio.sleep(random.uniform(0.2, 1.5))  # a heavy query
        duration = time.perf_counter() - started
        log.performance("daily_report", duration, threshold_ms=800)
        return {"report": "daily", "orders": len(orders.products()), "seconds": round(duration, 3)}

    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Map the services' expected failures to 4xx answers; anything else is a 500 kansoku records."""

    def answer(status: int) -> Any:
        async def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": type(exc).__name__, "detail": str(exc)}, status_code=status)

        return handler

    app.add_exception_handler(NotFound, answer(404))
    app.add_exception_handler(UserExists, answer(409))
    app.add_exception_handler(OutOfStock, answer(409))
    app.add_exception_handler(PaymentValidationError, answer(422))
    app.add_exception_handler(PaymentDeclined, answer(402))
