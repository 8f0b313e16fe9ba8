"""Celery: the trace goes from the code that enqueues a task into the task; each task run is a job run.

`kansoku.instrument_celery(celery_app)` (also done by `kansoku.instrument(app)` when a Celery app
exists in the process) builds the runtime and calls `instrument(app, runtime)`, which connects
Celery's signals, process-wide:

- `before_task_publish`: the current trace context (W3C `traceparent`, or whatever
  `OTEL_PROPAGATORS` says) and the enqueue time go into the message headers. A retry, or the next
  task of a chain, is published from inside the running task, so it continues the same trace.
- `task_prerun`: a `kansoku.jobs.JobRun` named by the task, a CONSUMER span child of the
  publisher's context, with `messaging.message.id` (the task id), `celery.retries` and the queue;
  `task_id`/`task_name` (and `job`, `job_run_id`, `trace_id`) on every log line of the task; the
  time since enqueue observed as `kansoku_job_queue_wait_seconds`.
- `task_failure`: the error event, captured while the traceback is still there (Celery clears it
  after), grouped by code location within the task, the task's name as culprit, the call's args
  and kwargs (redacted) only at the DETAILED and VERBOSE trace levels.
- `task_postrun`: the run ends with Celery's state: `ok`, `retry` (counted in
  `kansoku_job_retries_total`), `rejected`, `ignored`, or `error` from the failure above.
- `worker_process_shutdown` (each prefork child): errors, spans and logs are flushed before the
  child's `os._exit()` (the store's engine already opens new connections after a fork).
- `worker_ready` (the main process): `/metrics` is served on `worker_metrics_port` when it is
  set; with the prefork pool, set `multiprocess_dir` too, so that the children's metrics are
  summed there.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Mapping
from typing import Any, Final

from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from kansoku import jobs
from kansoku._safety import suppress_internal_errors
from kansoku.jobs import JobRun
from kansoku.logs import get_logger
from kansoku.tracing import TraceLevel

__all__ = ["ENQUEUED_HEADER", "instrument", "instrumented", "uninstrument_celery"]

ENQUEUED_HEADER: Final = "kansoku_enqueued_at"
_RUN_ATTRIBUTE: Final = "_kansoku_run"
_STATUS: Final = {"SUCCESS": "ok", "RETRY": "retry", "REJECTED": "rejected", "IGNORED": "ignored"}
_apps: weakref.WeakSet[Any] = weakref.WeakSet()
_connected: list[tuple[Any, Any]] = []
_runtime: list[Any] = []  # the runtime `instrument` was given (the worker's process has one)
_log = get_logger("kansoku.celery")


def instrumented(app: Any) -> bool:
    """Whether `instrument_celery` has seen this Celery app."""
    return app in _apps


def instrument(app: Any, runtime: Any) -> Any:
    """Trace, measure and capture the tasks of `app` with `runtime` (see the module docs); returns `app`.

    `kansoku.instrument_celery(app)` (in `kansoku.runtime`) builds the runtime and calls this. Idempotent.
    """
    _runtime[:] = [runtime]
    # kansoku owns logging: Celery's own lines come out through it (JSON, with the task's ids). Left
    # on, Celery would replace the root logger's handlers and turn stdout, where kansoku writes,
    # into a logger that drops what is written to it from a log handler.
    app.conf.update(worker_hijack_root_logger=False, worker_redirect_stdouts=False)
    _apps.add(app)
    if not _connected:
        _connect()
    return app


def uninstrument_celery() -> None:
    """Disconnect every signal handler (tests)."""
    while _connected:
        signal, handler = _connected.pop()
        signal.disconnect(handler)
    _apps.clear()
    _runtime.clear()


def _connect() -> None:
    from celery import signals

    for signal, handler in ((signals.before_task_publish, _on_publish), (signals.task_prerun, _on_prerun),
                            (signals.task_failure, _on_failure), (signals.task_postrun, _on_postrun),
                            (signals.worker_process_shutdown, _on_child_exit), (signals.worker_ready, _on_ready)):
        signal.connect(handler, weak=False)
        _connected.append((signal, handler))


def _on_publish(sender: Any = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
    if headers is None:
        return
    with suppress_internal_errors("celery.publish"):
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        headers.update(carrier)
        headers[ENQUEUED_HEADER] = time.time()


def _on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, args: Any = None,
               kwargs: Any = None, **_: Any) -> None:
    if task is None:
        return
    with suppress_internal_errors("celery.prerun"):
        request = task.request
        name = str(task.name)
        state = jobs.state()
        arguments = ({"args": list(args or ()), "kwargs": dict(kwargs or {})}
                     if state.level >= TraceLevel.DETAILED else None)
        run = JobRun(state, name, run_id=str(task_id), kind=SpanKind.CONSUMER, parent=_parent(request),
                     attributes=_attributes(request, name, str(task_id)), queue_wait=_queue_wait(request),
                     arguments=arguments, fields={"task_id": str(task_id), "task_name": name})
        run.token = run.resume()
        setattr(request, _RUN_ATTRIBUTE, run)


def _on_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    run = _run_of(sender)
    if run is not None and run.status is None:
        run.done(exception)  # now: the traceback is cleared once the signal returns


def _on_postrun(sender: Any = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    run = _run_of(task)
    if run is None:
        return
    with suppress_internal_errors("celery.postrun"):
        delattr(task.request, _RUN_ATTRIBUTE)
        if run.status is None:
            run.status = _STATUS.get(str(state), "error")
            run.done(None)
        run.suspend(run.token)


def _run_of(task: Any) -> JobRun | None:
    request = getattr(task, "request", None)
    run = getattr(request, _RUN_ATTRIBUTE, None) if request is not None else None
    return run if isinstance(run, JobRun) else None


def _parent(request: Any) -> Any:
    """The publisher's trace context, from the message headers (Celery puts them on the request)."""
    fields = propagate.get_global_textmap().fields
    carrier = {name: value for name in fields if isinstance(value := getattr(request, name, None), str)}
    return propagate.extract(carrier) if carrier else None


def _queue_wait(request: Any) -> float | None:
    enqueued = getattr(request, ENQUEUED_HEADER, None)
    if not isinstance(enqueued, int | float):
        return None
    eta = getattr(request, "eta", None)
    if isinstance(eta, str):  # a countdown or eta: waiting until then is not queueing
        from datetime import datetime

        with suppress_internal_errors("celery.eta"):
            enqueued = max(float(enqueued), datetime.fromisoformat(eta).timestamp())
    return time.time() - float(enqueued)


def _attributes(request: Any, name: str, task_id: str) -> Mapping[str, Any]:
    delivery = getattr(request, "delivery_info", None) or {}
    queue = delivery.get("routing_key") or delivery.get("exchange") or ""
    attributes: dict[str, Any] = {
        "messaging.system": "celery", "messaging.operation.type": "process", "messaging.operation.name": "run",
        "messaging.message.id": task_id, "celery.task_name": name,
        "celery.retries": int(getattr(request, "retries", 0) or 0),
    }
    if queue:
        attributes["messaging.destination.name"] = str(queue)
    return attributes


def _on_child_exit(**_: Any) -> None:
    """A prefork child is about to leave with os._exit(), which skips the flush at exit: flush now."""
    for current in _runtime:
        current.close(5.0)


def _on_ready(sender: Any = None, **_: Any) -> None:
    """The worker's main process is ready: serve /metrics if a port is configured."""
    from kansoku.runtime.metrics_server import serve

    if not _runtime:
        return
    current = _runtime[0]
    settings = current.settings
    pool = type(getattr(sender, "pool", None)).__module__ if sender is not None else ""
    if "prefork" in pool and settings.multiprocess_dir is None:
        _log.warning("the Celery prefork pool runs tasks in child processes: set KANSOKU_MULTIPROCESS_DIR so "
                     "that /metrics sums their metrics")
    if settings.worker_metrics_port is not None:
        with suppress_internal_errors("celery.metrics"):
            server = serve(current, port=settings.worker_metrics_port, host=settings.worker_metrics_host)
            _log.info("serving worker metrics", url=f"http://{settings.worker_metrics_host}:{server.server_port}/metrics")
