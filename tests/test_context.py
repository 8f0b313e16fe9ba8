"""Context: binding, restoring, and inheritance by asyncio tasks and threads."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from kansoku.context import bind_context, clear_context, context, get_context, propagate_to_threads


def test_context_binds_for_the_block_and_restores_exactly() -> None:
    """The block's keys get their previous values back; keys bound inside by others survive."""
    clear_context()
    bind_context(user_id="outer")
    with context(user_id="inner", request_id="r1"):
        assert get_context() == {"user_id": "inner", "request_id": "r1"}
        bind_context(operation="checkout")
    assert get_context() == {"user_id": "outer", "operation": "checkout"}
    clear_context()


def test_nested_blocks_unwind_in_order() -> None:
    """Nested context blocks restore each level's values."""
    clear_context()
    with context(a=1):
        with context(a=2, b=3):
            assert get_context() == {"a": 2, "b": 3}
        assert get_context() == {"a": 1}
    assert get_context() == {}


def test_context_is_restored_when_the_block_raises() -> None:
    """An exception inside the block still restores the context."""
    clear_context()
    try:
        with context(request_id="r2"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert get_context() == {}


async def test_asyncio_tasks_inherit_and_do_not_leak() -> None:
    """A task started inside a block sees its fields; its own binds stay in the task."""
    clear_context()

    async def child() -> dict[str, object]:
        bind_context(step="child")
        await asyncio.sleep(0)
        return dict(get_context())

    with context(request_id="r3"):
        seen = await asyncio.create_task(child())
    assert seen == {"request_id": "r3", "step": "child"}
    assert get_context() == {}


def test_threads_and_executors_inherit_the_starters_context() -> None:
    """Threads and ThreadPoolExecutor tasks started inside a block carry its fields."""
    propagate_to_threads()
    clear_context()
    seen: dict[str, object] = {}

    class Worker(threading.Thread):
        def run(self) -> None:  # a subclass overriding run() is covered too
            seen["subclass"] = dict(get_context())

    with context(request_id="r4"):
        plain = threading.Thread(target=lambda: seen.update(plain=dict(get_context())))
        plain.start()
        plain.join()
        worker = Worker()
        worker.start()
        worker.join()
        with ThreadPoolExecutor(1) as pool:
            seen["pool"] = pool.submit(lambda: dict(get_context())).result()
    assert seen == {"plain": {"request_id": "r4"}, "subclass": {"request_id": "r4"}, "pool": {"request_id": "r4"}}
