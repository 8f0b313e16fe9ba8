"""The chapter's 8.1 example (UserService behind POST /users), ported by following docs/from-the-chapter.md.

What changed from the chapter, row by row of that page: `StructuredLogger` -> `kansoku.get_logger`,
`logger.business_log` / `audit_log` -> `log.business` / `log.audit`, `@log_api_call` and
`LoggingMiddleware` -> nothing (the middleware `kansoku.instrument` adds writes the access line),
and `logger.error(..., error=e)` stays as it is. A user without an e-mail fails in the database
call, as the chapter's `user_data["email"]` does; an address at db-down.example plays the database
refusing the connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from fastapi import FastAPI

import kansoku

log = kansoku.get_logger(__name__)
# The app's own stdlib logging, kept through the port: kansoku takes its lines over (one line each).
logging.basicConfig(level=logging.INFO)
db_log = logging.getLogger("users.db")


class UserService:
    """ユーザーサービス例 (the chapter's UserService)."""

    @kansoku.log_execution_time("user_creation")
    async def create_user(self, user_data: dict[str, Any]) -> dict[str, Any]:
        """Create a user: business log, the database call, business and audit logs."""
        log.info("Creating new user", category="business", user_email=user_data.get("email"),
                 registration_source=user_data.get("source", "direct"))
        # The chapter awaits this synchronous function; a blocking call belongs in a thread.
        user = await asyncio.to_thread(self._create_user_in_db, user_data)
        log.business("user_registration", value=1.0, user_id=user["id"], email=user["email"])
        log.audit("create", resource="user", result="success", resource_id=user["id"])
        return user

    @kansoku.log_database_operation("get_user_by_id")
    def _create_user_in_db(self, user_data: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.01)  # the simulated database round trip
        if user_data.get("email", "").endswith("@db-down.example"):
            raise ConnectionRefusedError("database connection refused")
        db_log.info("user row written")
        return {"id": str(uuid.uuid4()), "email": user_data["email"], "created_at": time.time()}


app = FastAPI(title="users")
kansoku.instrument(app)
user_service = UserService()


@app.post("/users")
async def create_user_endpoint(user_data: dict[str, Any]) -> dict[str, Any]:
    """ユーザー作成エンドポイント: the chapter's endpoint, without @log_api_call."""
    try:
        user = await user_service.create_user(user_data)
        return {"user": user, "status": "created"}
    except Exception as e:
        log.error("User creation failed", category="business", error=e, user_email=user_data.get("email"))
        raise
