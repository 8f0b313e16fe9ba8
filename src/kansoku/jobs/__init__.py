"""Background jobs: any worker loop gets a span, metrics, error grouping and log context per run.

::

    with kansoku.job("import-orders", run_id=rq_job.id):   # RQ, arq, dramatiq, APScheduler, a loop
        import_orders()

    @kansoku.job("send-digest")                             # or as a decorator (sync, async, generators)
    async def send_digest(user_id): ...

Each run is a span named by the job (a child of the current span, if any), `job` and
`job_run_id` (and the span's `trace_id`) on every log line inside it, the metrics of
`kansoku.jobs._metrics` (`kansoku_job_runs_total{job,status}`...), and on an exception one error
event grouped by code location within the job, with the job's name as culprit, then re-raised.
The arguments of a decorated function go on the span and the event (redacted) only at the
DETAILED and VERBOSE trace levels. The Celery integration (`kansoku.integrations.celery`) makes
the same runs for tasks.

Before `instrument()` (or `setup()`) a job still counts in prometheus_client's default registry
and logs its failure; the runtime configures spans, its registry and the error tracker here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

from prometheus_client import REGISTRY, CollectorRegistry

from kansoku._delegate import wrap
from kansoku.jobs._run import CURRENT, Capture, JobRun, JobState, new_run_id
from kansoku.redact import Redactor
from kansoku.tracing import LightTracer, TraceLevel

__all__ = ["Job", "JobRun", "configure", "current_run", "job", "new_run_id", "reset", "state"]

F = TypeVar("F", bound=Callable[..., Any])
_STATE = JobState()


def state() -> JobState:
    """What runs use now (the runtime's tracer, registry and error capture, once configured)."""
    return _STATE


def configure(
    *, tracer: LightTracer | None, capture: Capture | None, level: TraceLevel | str, redactor: Redactor,
    registry: CollectorRegistry,
) -> None:
    """Set what runs use (the runtime calls this when it is built)."""
    _STATE.tracer = tracer
    _STATE.capture = capture
    _STATE.level = TraceLevel.parse(level)
    _STATE.redactor = redactor
    _STATE.registry = registry


def reset() -> None:
    """Back to the unconfigured state: no spans, no error capture, the default registry."""
    configure(tracer=None, capture=None, level=TraceLevel.PERFORMANCE, redactor=Redactor(), registry=REGISTRY)


def current_run() -> JobRun | None:
    """The job run the caller is inside, or None."""
    return CURRENT.get()


class Job:
    """A job by name: `with job:` runs a block as one run, `@job` makes each call of a function one run."""

    def __init__(self, name: str | None, run_id: str | None, fields: Mapping[str, Any]) -> None:
        self.name = name
        self.run_id = run_id
        self.fields = dict(fields)

    def __enter__(self) -> JobRun:
        if self.name is None:
            raise TypeError("kansoku.job() as a context manager needs a name: with kansoku.job('import-orders'): ...")
        run = JobRun(_STATE, self.name, run_id=self.run_id, fields=self.fields)
        run.token = run.resume()
        return run

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        run = CURRENT.get()
        if run is None:  # pragma: no cover - exited in another context than entered
            return
        run.done(exc)
        run.suspend(run.token)

    def __call__(self, func: F) -> F:
        if not callable(func):
            raise TypeError(f"kansoku.job() decorates a function, not {type(func).__name__}")
        name = self.name or f"{func.__module__}.{func.__qualname__}"
        fields = self.fields
        signature: list[inspect.Signature] = []

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            try:
                if not signature:
                    signature.append(inspect.signature(func))
                return dict(signature[0].bind_partial(*args, **kwargs).arguments)
            except (TypeError, ValueError):  # a wrong call: the function itself will say so
                return {**{f"arg{i}": value for i, value in enumerate(args)}, **kwargs}

        def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> JobRun:
            given = arguments(args, kwargs) if _STATE.level >= TraceLevel.DETAILED else None
            return JobRun(_STATE, name, arguments=given, fields=fields)

        return wrap(func, begin)


@overload
def job(name: F, /) -> F: ...


@overload
def job(name: str | None = None, /, *, run_id: str | None = None, **fields: Any) -> Job: ...


def job(name: str | Callable[..., Any] | None = None, /, *, run_id: str | None = None, **fields: Any) -> Any:
    """One job run per `with` block or per call of the decorated function (see the module docs).

    `name` is the job's name in spans, metrics and error groups (default for a decorated
    function: `module.qualname`); `run_id` the block's run id (default: a new one; a decorated
    function gets a new one per call); `fields` more log context (`queue="default"`).
    `@kansoku.job` without parentheses works too.
    """
    if callable(name):
        return Job(None, None, {})(name)
    return Job(name, run_id, fields)
