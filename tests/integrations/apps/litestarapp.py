"""A Litestar app as a team writes it, with no kansoku in it: typed path params, a failure, a stream."""

import asyncio
import os
import pathlib
import time
from collections.abc import AsyncIterator

from litestar import Litestar, Response, get
from litestar.params import FromPath
from litestar.response import Stream


@get("/items/{item_id:int}", status_code=201)
async def item(item_id: FromPath[int]) -> Response[dict[str, int]]:
    """A templated route with a typed parameter; its own status and header."""
    return Response({"item": item_id, "pid": os.getpid()}, status_code=201, headers={"X-App": "litestar"})


@get("/boom")
async def boom() -> None:
    """Litestar turns this into its own 500 response."""
    raise ValueError("litestar handler failed")


@get("/upstream")
async def upstream() -> Response[str]:
    """A 503 answered without an exception."""
    return Response("upstream down", status_code=503)


@get("/stream")
async def stream(gate: str) -> Stream:
    """Two chunks; the second only once the client has the first (the `gate` file appears)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b"first;"
        deadline = time.monotonic() + 10
        # The test process makes the file: no asyncio.Event crosses processes; a stat is no real I/O.
        while not pathlib.Path(gate).exists() and time.monotonic() < deadline:  # noqa: ASYNC110, ASYNC240
            await asyncio.sleep(0.01)
        yield b"second"

    return Stream(chunks(), media_type="text/plain")


app = Litestar([item, boom, upstream, stream])
