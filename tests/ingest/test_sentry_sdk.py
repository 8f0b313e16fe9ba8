"""The real Python sentry-sdk, configured only with a project's DSN, reporting to kansoku server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk

from kansoku.store import queries

from .conftest import Running, wait_for


@pytest.fixture
def sentry() -> Iterator[Callable[..., Any]]:
    """`sentry(dsn, **options)` initialises sentry-sdk without integrations; closed after the test."""

    def init(dsn: str, **options: Any) -> None:
        sentry_sdk.init(dsn=dsn, default_integrations=False, auto_enabling_integrations=False,
                        transport_queue_size=1000, **options)

    yield init
    sentry_sdk.get_client().close(timeout=5)
    # An inactive client again; still no integrations, which would patch the stdlib process-wide.
    sentry_sdk.init(default_integrations=False, auto_enabling_integrations=False)


def checkout(order: int) -> None:
    """Fail like a service's handler: one error, many orders."""
    raise ValueError(f"payment for order {order} declined")


def groups(running: Running) -> list[dict[str, Any]]:
    """Every error group in the server's store."""
    return list(queries.list_groups(running.engine, status=None, limit=50)["items"])


def test_hundred_same_errors_make_one_group_of_100(running: Running, sentry: Callable[..., Any]) -> None:
    """100 captures of one error by sentry-sdk make one group with count 100, frames and release kept."""
    sentry(running.config["dsn"], release="shop@1.2.0", environment="staging")
    sentry_sdk.set_user({"id": "user-7"})
    sentry_sdk.set_tag("region", "eu")
    for order in range(100):
        try:
            checkout(order)
        except ValueError:
            sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=20)
    found = wait_for(lambda: [g for g in groups(running) if g["count"] == 100], what="a group of 100")
    assert len(groups(running)) == 1
    group = queries.get_group(running.engine, found[0]["id"], events=1)
    assert group is not None
    event = group["events"][0]
    assert (group["exception_type"], group["environment"], group["last_release"], group["project"]) == (
        "ValueError", "staging", "shop@1.2.0", "shop")
    module = "tests.ingest.test_sentry_sdk"
    assert group["fingerprint_parts"] == ["type:ValueError",
                                          f"frame:{module}.test_hundred_same_errors_make_one_group_of_100",
                                          f"frame:{module}.checkout"]
    frame = event["exceptions"][-1]["frames"][-1]
    assert (frame["function"], frame["in_app"], frame["context_line"].strip()) == (
        "checkout", True, 'raise ValueError(f"payment for order {order} declined")')
    assert event["user"] == {"id": "user-7"} and event["tags"]["region"] == "eu"
    assert group["users_affected"] == 1


def test_message_and_custom_fingerprint(running: Running, sentry: Callable[..., Any]) -> None:
    """capture_message is an event of its own; the SDK's fingerprint decides the group."""
    sentry(running.config["dsn"])
    sentry_sdk.capture_message("cache warmed in 35 ms", level="warning")
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["payments-down"]
        for order in (1, 2):
            try:
                checkout(order)
            except ValueError:
                sentry_sdk.capture_exception()
    sentry_sdk.flush(timeout=20)
    found = wait_for(lambda: len(groups(running)) == 2 and sum(g["count"] for g in groups(running)) == 3
                     and groups(running), what="two groups")
    by_parts = {tuple(g["fingerprint_parts"]): g for g in found}
    assert by_parts[("custom:payments-down",)]["count"] == 2
    message = by_parts[("type:Message", "message:cache warmed in <int> ms")]
    assert message["title"] == "Message: cache warmed in 35 ms"


def test_transactions_become_spans(running: Running, sentry: Callable[..., Any]) -> None:
    """A sentry-sdk transaction and its child span land in the span store as one trace."""
    sentry(running.config["dsn"], traces_sample_rate=1.0)
    with sentry_sdk.start_transaction(op="task", name="nightly-report") as transaction, \
            sentry_sdk.start_span(op="db", name="SELECT orders"):
        pass
    sentry_sdk.flush(timeout=20)
    from sqlalchemy import select

    from kansoku.store.tables import spans

    rows = wait_for(lambda: running.engine.connect().execute(
        select(spans.c.name, spans.c.trace_id, spans.c.is_root, spans.c.project).order_by(spans.c.start_time)
    ).all(), what="spans")
    assert [tuple(r) for r in rows] == [("nightly-report", transaction.trace_id, True, "shop"),
                                        ("SELECT orders", transaction.trace_id, False, "shop")]


def test_a_rate_limited_sdk_backs_off(start_server: Callable[..., Running], sentry: Callable[..., Any]) -> None:
    """Told 429 (Retry-After, X-Sentry-Rate-Limits), sentry-sdk stops sending: no more than the limit is kept."""
    running = start_server(rate_limit=5)  # 5 events a minute for this project's key
    sentry(running.config["dsn"])
    for order in range(40):
        try:
            checkout(order)
        except ValueError:
            sentry_sdk.capture_exception()
        sentry_sdk.flush(timeout=5)  # one request per event, so the SDK sees each answer
    answers = running.server.ingest.answers
    assert answers[429] >= 1
    assert answers[200] <= 6  # the limit, and at most one token refilled while the test ran
    assert answers[200] + answers[429] < 20  # after the 429 the SDK dropped events instead of sending
    running.server.errors.flush(10)
    assert sum(g["count"] for g in groups(running)) == answers[200]
