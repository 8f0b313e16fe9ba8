"""`/metrics` and `/health` for a process that serves no web app: a Celery or RQ worker, a script.

A small threaded HTTP server from the standard library, in a daemon thread, answering exactly as
the `/metrics` route of `instrument()` does (the same `MetricsEndpoint`: `metrics_token`,
`metrics_allow`, OpenMetrics when asked, gzip, and in multi-process mode the sum of every
process's files). Every other path is a 404.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from kansoku.runtime.endpoints import MetricsEndpoint

__all__ = ["serve"]


def serve(current: Any, port: int | None = None, host: str | None = None) -> ThreadingHTTPServer:
    """Serve the runtime `current`'s `/metrics` (and `/health`) on `host:port`; returns the server.

    Default port and host: the `worker_metrics_port` and `worker_metrics_host` settings (port 0 picks
    a free one: read `server.server_port`). Call `server.shutdown()` to stop it.
    """
    settings = current.settings
    chosen_port = port if port is not None else settings.worker_metrics_port
    if chosen_port is None:
        raise ValueError("serve_metrics() needs a port, or the worker_metrics_port setting "
                         "(KANSOKU_WORKER_METRICS_PORT)")
    endpoint = MetricsEndpoint(current.registry, settings, lambda scope: scope["client"][0])
    server = ThreadingHTTPServer((host or settings.worker_metrics_host, chosen_port), _handler(endpoint))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="kansoku-metrics", daemon=True)
    thread.start()
    return server


def _handler(endpoint: MetricsEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/health":
                self._send(200, orjson.dumps({"status": "ok"}), [("content-type", "application/json")])
                return
            if path != "/metrics":
                self._send(404, orjson.dumps({"error": "not found"}), [("content-type", "application/json")])
                return
            denied = endpoint.denied(self.client_address[0], self.headers.get("authorization", "").encode())
            if denied is not None:
                status, error, extra = denied
                self._send(status, orjson.dumps({"error": error}),
                           [("content-type", "application/json"), *((k.decode(), v.decode()) for k, v in extra)])
                return
            body, headers = endpoint.render(self.headers.get("accept", ""), self.headers.get("accept-encoding", ""))
            self._send(200, body, [(k.decode(), v.decode()) for k, v in headers])

        def _send(self, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are not logged (they would be most of a worker's log)."""

    return Handler
