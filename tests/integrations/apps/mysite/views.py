"""Views as a team writes them, with no kansoku in them."""

import asyncio
import os
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Iterator

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse


class HeaderLogin:
    """Stands for a login: `X-Test-User: ada` makes the request's user an authenticated Ada (id 7)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.headers.get("X-Test-User") == "ada":
            request.user = User(id=7, username="ada")
        return self.get_response(request)


def item(request: HttpRequest, item_id: int) -> JsonResponse:
    """A templated route under an include; its own status and header."""
    response = JsonResponse({"item": item_id, "pid": os.getpid()}, status=201)
    response["X-App"] = "django"
    return response


def article(request: HttpRequest, year: str) -> HttpResponse:
    """A regex route."""
    return HttpResponse(f"articles of {year}")


def boom(request: HttpRequest) -> HttpResponse:
    """Django turns this into its own 500 page."""
    raise ValueError("django view failed")


def upstream(request: HttpRequest) -> HttpResponse:
    """A 503 answered without an exception."""
    return HttpResponse("upstream down", status=503)


def stream(request: HttpRequest) -> StreamingHttpResponse:
    """Two chunks; the second only once the client has the first (the `gate` file appears)."""
    gate = pathlib.Path(request.GET["gate"])

    def chunks() -> Iterator[bytes]:
        yield b"first;"
        deadline = time.monotonic() + 10
        # The test process makes the file: no asyncio.Event crosses processes; a stat is no real I/O.
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        yield b"second"

    return StreamingHttpResponse(chunks(), content_type="text/plain")


def astream(request: HttpRequest) -> StreamingHttpResponse:
    """The same with an async iterator, which Django streams under ASGI (it buffers sync ones there)."""
    gate = pathlib.Path(request.GET["gate"])

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        deadline = time.monotonic() + 10
        # The test process makes the file: no asyncio.Event crosses processes; a stat is no real I/O.
        while not gate.exists() and time.monotonic() < deadline:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)
        yield b"second"

    return StreamingHttpResponse(chunks(), content_type="text/plain")
