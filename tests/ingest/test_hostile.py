"""Hostile and broken senders: every refusal is 4xx with the reason, never 5xx, memory stays bounded."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator

import httpx
import psutil
import pytest

from kansoku.store.projects import rotate_key

from .conftest import Running, wait_for

EVENT = {"event_id": "a" * 32, "exception": {"values": [{"type": "KeyError", "value": "'sku'"}]}}


def envelope(event: dict[str, object]) -> bytes:
    """A one-event Sentry envelope."""
    payload = json.dumps(event).encode()
    return b"\n".join([b"{}", json.dumps({"type": "event", "length": len(payload)}).encode(), payload])


def sentry_post(running: Running, body: bytes, key: str | None = None, **headers: str) -> httpx.Response:
    """POST `body` to the project's envelope endpoint with the DSN key in X-Sentry-Auth."""
    auth = {"X-Sentry-Auth": f"Sentry sentry_version=7, sentry_key={key or running.project.key}"}
    return httpx.post(f"{running.url}/api/{running.project.id}/envelope/", content=body,
                      headers={**auth, **headers}, timeout=60)


def otlp_post(running: Running, body: bytes | Iterator[bytes], **headers: str) -> httpx.Response:
    """POST `body` to /v1/traces with the project's bearer token."""
    return httpx.post(f"{running.url}/v1/traces", content=body, timeout=60,
                      headers={"Authorization": f"Bearer {running.project.key}", **headers})


PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def small_limits(start_server: Callable[..., Running]) -> Running:
    """A server with 1 MiB bodies (as sent) and 4 MiB once decompressed."""
    return start_server(ingest_max_body_bytes=1024 * 1024, ingest_max_decompressed_bytes=4 * 1024 * 1024)


def test_hostile_bodies_are_4xx_with_reasons_and_memory_stays_bounded(small_limits: Running) -> None:
    """Malformed protobuf, wrong content types, 50 MB, a gzip bomb, bad JSON: 4xx with a reason, RSS bounded."""
    running = small_limits
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MiB of zeros in ~200 KiB
    process = psutil.Process()
    before = process.memory_info().rss
    answers = {
        "malformed protobuf": otlp_post(running, b"\x0a\xff\xff\xff\xff\x0f garbage", **PROTOBUF),
        "wrong content type": otlp_post(running, b"<spans/>", **{"Content-Type": "text/xml"}),
        # streamed (chunked, no Content-Length), 1 MiB at a time: refused while reading
        "50 MB": otlp_post(running, (b"\0" * (1024 * 1024) for _ in range(50)), **PROTOBUF),
        "gzip bomb (otlp)": otlp_post(running, bomb, **PROTOBUF, **{"Content-Encoding": "gzip"}),
        "gzip bomb (sentry)": sentry_post(running, bomb, **{"Content-Encoding": "gzip"}),
        "bad gzip": sentry_post(running, b"\x1f\x8b not gzip at all", **{"Content-Encoding": "gzip"}),
        "unknown encoding": sentry_post(running, b"x", **{"Content-Encoding": "zstd"}),
        "bad JSON (otlp)": otlp_post(running, b'{"resourceSpans": [', **{"Content-Type": "application/json"}),
        "bad JSON (sentry)": sentry_post(running, b'{}\n{"type": "event"}\n{"exception": '),
        "bad envelope length": sentry_post(running, b'{}\n{"type": "event", "length": 99999}\n{}'),
        "JSON not an object": sentry_post(running, b'{}\n{"type": "event"}\n[1, 2]'),
        "OTLP JSON with base64 ids": otlp_post(running, json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "W46/95gDgQPSabYzgT/GDA==", "spanId": "7uGbfsPBsXQ="}]}]}]}).encode(),
            **{"Content-Type": "application/json"}),
    }
    grown = process.memory_info().rss - before
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "malformed protobuf": 400, "wrong content type": 415, "50 MB": 413, "gzip bomb (otlp)": 413,
        "gzip bomb (sentry)": 413, "bad gzip": 400, "unknown encoding": 415, "bad JSON (otlp)": 400,
        "bad JSON (sentry)": 400, "bad envelope length": 400, "JSON not an object": 400,
        "OTLP JSON with base64 ids": 400,
    }
    assert all(answer.json()["detail"] for answer in answers.values())
    assert "once decompressed" in answers["gzip bomb (sentry)"].json()["detail"]
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown / 1e6:.0f} MB"
    assert httpx.get(f"{running.url}/health").status_code == 200  # still serving


def test_keys_unknown_revoked_or_of_another_project_are_401(running: Running) -> None:
    """No key, an unknown key, a key of another project id and a rotated-away key: 401; the new key works."""
    body = envelope(EVENT)
    assert httpx.post(f"{running.url}/api/{running.project.id}/envelope/", content=body).status_code == 401
    assert sentry_post(running, body, key="f" * 32).status_code == 401
    other = httpx.post(f"{running.url}/api/{running.project.id + 1}/envelope/", content=body,
                       params={"sentry_key": running.project.key})
    assert other.status_code == 401 and "does not belong" in other.json()["detail"]
    old_key = running.project.key
    new = rotate_key(running.engine, running.project.id)
    running.server.ingest.keys.ttl = 0.0  # the 5 s key cache would keep the old key a moment
    assert sentry_post(running, body, key=old_key).status_code == 401
    assert otlp_post(running, b"", **PROTOBUF).status_code == 401
    accepted = sentry_post(running, body, key=new.key)
    assert (accepted.status_code, accepted.json()) == (200, {"id": "a" * 32})


def test_deflate_and_legacy_store_endpoint(running: Running) -> None:
    """The legacy store endpoint takes one event as JSON, deflate-compressed, the key in the query."""
    body = zlib.compress(json.dumps(EVENT).encode())
    answer = httpx.post(f"{running.url}/api/{running.project.id}/store/", content=body,
                        params={"sentry_key": running.project.key}, headers={"Content-Encoding": "deflate"})
    assert answer.status_code == 200
    from kansoku.store import queries

    group = wait_for(lambda: queries.list_groups(running.engine, status=None)["items"], what="the group")[0]
    assert group["title"] == "KeyError: 'sku'"


def test_other_items_are_counted_and_otlp_metrics_say_not_supported(running: Running) -> None:
    """Session and client-report items are accepted and counted; /v1/metrics answers 404 and why."""
    body = b'{}\n{"type": "session"}\n{"sid": "x"}\n{"type": "client_report"}\n{"discarded_events": []}\n'
    assert sentry_post(running, body).status_code == 200
    assert running.server.ingest.ingestor.counts["ignored:session"] == 1
    assert running.server.ingest.ingestor.counts["ignored:client_report"] == 1
    answer = httpx.post(f"{running.url}/v1/metrics", content=b"", headers={
        "Authorization": f"Bearer {running.project.key}", **PROTOBUF})
    assert answer.status_code == 404 and "not" in answer.json()["detail"]
