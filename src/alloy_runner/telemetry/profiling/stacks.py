"""Every thread's and every asyncio task's stack: Python's answer to Go's goroutine dump.

It is read from the thread that asks (the metrics server's), without
stopping or waiting on the event loop: a dump is most wanted when the loop
is stuck. Reading another thread's frames under the GIL is safe; the set of
tasks can change while it is copied, which `asyncio.all_tasks` retries.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any

from alloy_runner.telemetry.profiling.pprof import (
    MAX_DEPTH,
    Frame,
    ProfileBuilder,
    Stack,
    frame_of,
    stack_of,
)


@dataclass(frozen=True)
class ThreadStack:
    """One thread and where it is."""

    name: str
    ident: int
    native_id: int | None
    daemon: bool
    stack: Stack


@dataclass(frozen=True)
class TaskStack:
    """One asyncio task and the chain of coroutines it is suspended in."""

    name: str
    state: str  # pending, done, cancelled
    stack: Stack  # innermost first
    awaiting: str  # what the innermost coroutine waits on ("" if nothing known)


def thread_stacks() -> list[ThreadStack]:
    """Return the stack of every Python thread, the main thread first, then by name."""
    threads = {t.ident: t for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        thread = threads.get(ident)
        out.append(
            ThreadStack(
                name=thread.name if thread is not None else f"thread-{ident}",
                ident=ident,
                native_id=thread.native_id if thread is not None else None,
                daemon=thread.daemon if thread is not None else True,
                stack=stack_of(frame),
            )
        )
    main = threading.main_thread().ident
    return sorted(out, key=lambda t: (t.ident != main, t.name, t.ident))


def _await_chain(coro: Any) -> Iterator[FrameType | object]:
    """Yield the frames of `coro` and of what it awaits, outermost first, then the awaited leaf."""
    seen = 0
    while coro is not None and seen < MAX_DEPTH:
        seen += 1
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is None:
            if not hasattr(coro, "cr_await") and not hasattr(coro, "gi_yieldfrom"):
                yield coro  # a future, or something else that is not a coroutine
            return
        yield frame
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)


def task_stacks(loop: asyncio.AbstractEventLoop | None) -> list[TaskStack]:
    """Return every task of `loop` with its await chain, sorted by name."""
    if loop is None or loop.is_closed():
        return []
    out = []
    for task in asyncio.all_tasks(loop):
        frames: list[Frame] = []
        awaiting = ""
        for item in _await_chain(task.get_coro()):
            if isinstance(item, FrameType):
                frames.append(frame_of(item))
            else:
                awaiting = _short_repr(item)
        # What the task is blocked on; the coroutine chain ends in an opaque iterator instead.
        waiter = getattr(task, "_fut_waiter", None)
        if waiter is not None:
            awaiting = _short_repr(waiter)
        state = ("cancelled" if task.cancelled() else "done") if task.done() else "pending"
        out.append(TaskStack(task.get_name(), state, tuple(reversed(frames)), awaiting))
    return sorted(out, key=lambda t: t.name)


def _short_repr(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_stack(stack: Stack) -> list[str]:
    """Format innermost-first frames as a traceback does: the innermost call last."""
    return [f'  File "{f.filename}", line {f.line}, in {f.function}' for f in reversed(stack)]


def dump_text(loop: asyncio.AbstractEventLoop | None) -> str:
    """Return the full text dump of threads and tasks (`/debug/pprof/goroutine?debug=2`)."""
    threads = thread_stacks()
    tasks = task_stacks(loop)
    lines = [f"{len(threads)} threads, {len(tasks)} asyncio tasks", ""]
    for t in threads:
        native = f", native id {t.native_id}" if t.native_id is not None else ""
        daemon = ", daemon" if t.daemon else ""
        lines.append(f'thread "{t.name}" (ident {t.ident}{native}{daemon}):')
        lines += _format_stack(t.stack)
        lines.append("")
    for task in tasks:
        lines.append(f'task "{task.name}" [{task.state}]:')
        lines += _format_stack(task.stack)
        if task.awaiting:
            lines.append(f"  awaiting {task.awaiting}")
        lines.append("")
    return "\n".join(lines)


def dump_profile(loop: asyncio.AbstractEventLoop | None) -> bytes:
    """Return threads and tasks as a gzipped pprof profile of counts (`goroutine?debug=0`)."""
    builder = ProfileBuilder([("goroutine", "count")], ("goroutine", "count"), 1)
    for t in thread_stacks():
        builder.add(t.stack, (1,), (("kind", "thread"), ("thread", t.name)))
    for task in task_stacks(loop):
        labels = (("kind", "task"), ("task", task.name), ("state", task.state))
        builder.add(task.stack, (1,), labels)
    return builder.encode(0)
