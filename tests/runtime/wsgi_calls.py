"""Calling a WSGI app in-process the way a server does (PEP 3333): start_response, iterate, close."""

from __future__ import annotations

import wsgiref.util
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Answer:
    """What the server got: the status line, the headers, the body chunks."""

    status: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)

    @property
    def code(self) -> int:
        """The status code."""
        return int(self.status[:3])

    @property
    def body(self) -> bytes:
        """The whole body."""
        return b"".join(self.chunks)


def environ(path: str = "/", method: str = "GET", **extra: Any) -> dict[str, Any]:
    """A WSGI environ as a server builds it (wsgiref's defaults: 127.0.0.1, HTTP/1.0)."""
    made: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1",
                            "REMOTE_PORT": "50000", **extra}
    wsgiref.util.setup_testing_defaults(made)
    return made


def call(app: Any, path: str = "/", method: str = "GET", **extra: Any) -> Answer:
    """One request, served to the end: the body iterated and closed."""
    answer = Answer()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        answer.status, answer.headers = status, {name.lower(): value for name, value in headers}
        return answer.chunks.append

    body = app(environ(path, method, **extra), start_response)
    try:
        answer.chunks.extend(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return answer
