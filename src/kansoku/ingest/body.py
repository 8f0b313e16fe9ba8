"""Request bodies of untrusted senders: bounded while reading, bounded while decompressing.

`read_body` stops reading at `limit` bytes (a Content-Length over it is refused before a byte is
read); `decompress` inflates gzip or deflate in steps with a cap on the output, so a gzip bomb
costs at most `limit` bytes of memory. Every refusal is an `IngestError` with the status and the
reason to answer.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping
from typing import Final

__all__ = ["IngestError", "decompress", "read_body"]

_STEP: Final = 64 * 1024


class IngestError(Exception):
    """A request refused: `status` (400, 401, 413, 415, 429...), the reason, and headers to send."""

    def __init__(self, status: int, reason: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """The whole body from `chunks`, refusing (413) past `limit` bytes as soon as it gets there."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise IngestError(400, f"Content-Length {content_length[:40]!r} is not a number") from None
        if declared > limit:
            raise IngestError(413, f"body of {declared} bytes is over the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise IngestError(413, f"body over the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """`body` decoded per its Content-Encoding (identity, gzip, deflate), at most `limit` bytes out."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise IngestError(413, f"body over the limit of {limit} bytes")
        return body
    if name in ("gzip", "x-gzip"):
        wbits = 16 + zlib.MAX_WBITS
    elif name == "deflate":
        # "deflate" is zlib-wrapped per RFC 9110, but some senders send raw deflate: try both.
        wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and int.from_bytes(body[:2], "big") % 31 == 0
        wbits = zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS
    else:
        raise IngestError(415, f"Content-Encoding {name[:40]!r} not supported: send gzip, deflate or none")
    return _inflate(body, wbits, limit, name)


def _inflate(body: bytes, wbits: int, limit: int, name: str) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out: list[bytes] = []
    size = 0
    data = body
    try:
        while not inflater.eof:
            chunk = inflater.decompress(data, _STEP)  # at most _STEP bytes out per step
            size += len(chunk)
            if size > limit:
                raise IngestError(413, f"body over the limit of {limit} bytes once decompressed")
            out.append(chunk)
            data = inflater.unconsumed_tail
            if not chunk and not data:
                break
        if not inflater.eof:
            raise IngestError(400, f"truncated {name} body")
    except zlib.error as exc:
        raise IngestError(400, f"body is not valid {name}: {exc}") from None
    return b"".join(out)
