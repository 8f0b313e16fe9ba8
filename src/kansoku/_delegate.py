"""One wrapper builder for the four shapes of callable: function, coroutine, generator, async generator.

A decorator that measures or traces a call gives `wrap` a `begin(args, kwargs)` that returns
`StepHooks` (or None to run the call untouched). The wrapper keeps the shape of the function
(`inspect.iscoroutinefunction`, `isgeneratorfunction`, `isasyncgenfunction` stay true, which
frameworks such as FastAPI rely on), keeps generators lazy (`begin` runs at the first `next`),
passes `send`, `throw` and `close` through, and calls `resume`/`suspend` around each step so that a
span is current only while the wrapped code runs, not while the consumer does between two items.
Results and exceptions go through unchanged.

Decorators that only want a call's start and end (`timed`, `log_execution_time`, `track_errors`,
`track_business_metric`) use `around`: a generator's call then ends when its iteration does, so it
is measured over the iteration and its failures are seen, not only the call that creates it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, Protocol, TypeVar

__all__ = ["Finish", "StepHooks", "around", "wrap"]

F = TypeVar("F", bound=Callable[..., Any])


class StepHooks(Protocol):
    """What a wrapper does around each step of the wrapped call, and once at its end."""

    def resume(self) -> object:
        """Before each step; returns a token for `suspend`."""

    def suspend(self, token: object) -> None:
        """After each step."""

    def done(self, exc: BaseException | None) -> None:
        """Once: the call returned, the generator finished or was closed (None), or it raised."""


Begin = Callable[[tuple[Any, ...], dict[str, Any]], "StepHooks | None"]


def wrap(func: F, begin: Begin) -> F:
    """A wrapper of `func`'s shape that runs each call under the hooks `begin` returns."""
    if inspect.isasyncgenfunction(func):
        return _wrap_async_gen(func, begin)
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, begin)
    if inspect.isgeneratorfunction(func):
        return _wrap_gen(func, begin)
    return _wrap_function(func, begin)


Finish = Callable[[BaseException | None], None]


class _Ends:
    """Hooks that only report the end of the call."""

    __slots__ = ("finish",)

    def __init__(self, finish: Finish) -> None:
        self.finish = finish

    def resume(self) -> object:
        return None

    def suspend(self, token: object) -> None:
        pass

    def done(self, exc: BaseException | None) -> None:
        self.finish(exc)


def around(func: F, start: Callable[[], Finish | None]) -> F:
    """A wrapper of `func`'s shape: `start()` when a call begins (a generator's first step), and the
    `finish(exc)` it returns once when the call ends (returned, raised, iteration over or closed).

    `start` may return None to leave that call alone. A `finish` that raises raises to the caller:
    it must swallow its own failures, and raise only what the caller has to see.
    """

    def begin(args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepHooks | None:
        finish = start()
        return None if finish is None else _Ends(finish)

    return wrap(func, begin)


def _wrap_function(func: F, begin: Begin) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hooks = begin(args, kwargs)
        if hooks is None:
            return func(*args, **kwargs)
        token = hooks.resume()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            hooks.done(exc)
            hooks.suspend(token)
            raise
        hooks.done(None)
        hooks.suspend(token)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_coroutine(func: F, begin: Begin) -> F:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        hooks = begin(args, kwargs)
        if hooks is None:
            return await func(*args, **kwargs)
        token = hooks.resume()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            hooks.done(exc)
            hooks.suspend(token)
            raise
        hooks.done(None)
        hooks.suspend(token)
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_gen(func: F, begin: Begin) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        hooks = begin(args, kwargs)
        if hooks is None:
            return (yield from func(*args, **kwargs))
        return (yield from _drive(func(*args, **kwargs), hooks))

    return wrapper  # type: ignore[return-value]


def _drive(gen: Generator[Any, Any, Any], hooks: StepHooks) -> Generator[Any, Any, Any]:
    send: Any = None
    thrown: BaseException | None = None
    while True:
        token = hooks.resume()
        try:
            item = gen.send(send) if thrown is None else gen.throw(thrown)
        except StopIteration as stop:
            hooks.done(None)
            hooks.suspend(token)
            return stop.value
        except BaseException as exc:
            hooks.done(exc)
            hooks.suspend(token)
            raise
        hooks.suspend(token)
        try:
            send, thrown = (yield item), None
        except GeneratorExit:  # the consumer stopped early: close the inner one under the hooks
            token = hooks.resume()
            try:
                gen.close()
            finally:
                hooks.done(None)
                hooks.suspend(token)
            raise
        except BaseException as exc:  # thrown in by the consumer: forward it
            send, thrown = None, exc


def _wrap_async_gen(func: F, begin: Begin) -> F:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        hooks = begin(args, kwargs)
        agen: AsyncGenerator[Any, Any] = func(*args, **kwargs)
        if hooks is None:
            hooks = _NO_HOOKS
        send: Any = None
        thrown: BaseException | None = None
        while True:
            try:
                item = await _step(agen, hooks, send, thrown)
            except StopAsyncIteration:
                return
            try:
                send, thrown = (yield item), None
            except GeneratorExit:
                await _aclose(agen, hooks)
                raise
            except BaseException as exc:
                send, thrown = None, exc

    return wrapper  # type: ignore[return-value]


async def _step(
    agen: AsyncGenerator[Any, Any], hooks: StepHooks, send: Any, thrown: BaseException | None
) -> Any:
    token = hooks.resume()
    try:
        item = await (agen.asend(send) if thrown is None else agen.athrow(thrown))
    except StopAsyncIteration:
        hooks.done(None)
        hooks.suspend(token)
        raise
    except BaseException as exc:
        hooks.done(exc)
        hooks.suspend(token)
        raise
    hooks.suspend(token)
    return item


async def _aclose(agen: AsyncGenerator[Any, Any], hooks: StepHooks) -> None:
    token = hooks.resume()
    try:
        await agen.aclose()
    finally:
        hooks.done(None)
        hooks.suspend(token)


class _NoHooks:
    def resume(self) -> object:
        return None

    def suspend(self, token: object) -> None:
        pass

    def done(self, exc: BaseException | None) -> None:
        pass


_NO_HOOKS = _NoHooks()
