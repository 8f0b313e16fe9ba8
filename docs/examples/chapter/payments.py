"""The chapter's 8.4 example (PaymentService behind POST /payments), ported by following docs/from-the-chapter.md.

`@track_errors(ErrorCategory.BUSINESS_LOGIC)` -> `@kansoku.track_errors(category="business_logic")`;
the chapter's `global_exception_handler` -> the middleware's 500 `{"error": ..., "event_id": ...}`;
`/errors/statistics` and `/errors/{id}/resolve` -> `/kansoku/api/errors/statistics` and
`/kansoku/api/errors/{id}/resolve`. The chapter's `error_tracker.track_error(e, **context)` is
`kansoku.capture_exception(e, **context)`, used for the declined card below.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

import kansoku

log = kansoku.get_logger(__name__)


class PaymentDeclined(Exception):
    """The card network said no (the chapter's simulation has no such case; it shows track_error)."""


class PaymentService:
    """支払サービス例 (the chapter's PaymentService)."""

    @kansoku.track_errors(category="business_logic")
    async def process_payment(self, payment_data: dict[str, Any]) -> dict[str, Any]:
        """The chapter's three checks, then a payment id."""
        if payment_data["amount"] <= 0:
            raise ValueError("Payment amount must be positive")
        if not payment_data.get("card_number"):
            raise ValueError("Card number is required")
        if payment_data["amount"] > 10000:
            raise Exception("Payment amount exceeds limit")
        if str(payment_data["card_number"]).endswith("0002"):
            raise PaymentDeclined("card declined")
        return {"payment_id": str(uuid.uuid4()), "status": "completed", "amount": payment_data["amount"]}


app = FastAPI(title="payments")
kansoku.instrument(app)
payment_service = PaymentService()


@app.post("/payments", response_model=None)
async def process_payment_endpoint(payment_data: dict[str, Any]) -> dict[str, Any] | JSONResponse:
    """支払処理エンドポイント; a declined card is logged, recorded and answered 402 with the event id."""
    try:
        return await payment_service.process_payment(payment_data)
    except PaymentDeclined as e:
        log.error("Payment declined", exc_info=e, amount=payment_data["amount"])
        event_id = kansoku.capture_exception(e, amount=payment_data["amount"])  # the same event: its id
        return JSONResponse({"error": "payment_declined", "event_id": event_id}, status_code=402)
