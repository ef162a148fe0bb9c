"""Run one process in a session of its own, stream its output, and stop its whole group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alloy_runner.exceptions import ProcessReapError
from alloy_runner.executors.base import Outcome, ResourceUsage, ScriptResult

log = logging.getLogger(__name__)

READ_SIZE = 65536
DRAIN_TIMEOUT = 2.0  # how long output of leftover background processes is read after exit
REAP_TIMEOUT = 10.0  # how long a process may take to go after SIGKILL (a backup: it is at once)

# The waits on processes that SIGKILL did not end: should one end after all, it is seen.
LEFT_BEHIND: set[asyncio.Task[int | None]] = set()


@dataclass(frozen=True)
class RunAs:
    """A user that job processes run as (`run --user`), resolved once."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...]

    @classmethod
    def lookup(cls, name: str) -> RunAs:
        """Resolve `name`; KeyError when there is no such user."""
        import pwd

        entry = pwd.getpwnam(name)
        groups = tuple(os.getgrouplist(name, entry.pw_gid))
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, groups)

    def chown(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


async def run_process_group(
    argv: Sequence[str],
    *,
    cwd: Path | None,
    env: Mapping[str, str],
    output: Callable[[bytes], None],
    timeout: float | None,
    cancel: asyncio.Event,
    kill_timeout: float,
    stdin: bytes | None = None,
    usage: list[ResourceUsage] | None = None,
    user: RunAs | None = None,
) -> ScriptResult:
    """Run `argv` until it exits, times out or `cancel` is set, and return how it ended.

    stdout and stderr go to `output` as they come. The process starts a new
    session, so a stop reaches everything it started: TERM first, KILL after
    `kill_timeout` seconds; whatever is left in the group is killed at the end.
    `stdin`, when given, is written to the process and then closed. With
    `usage` (and no `stdin`), what the process tree used is appended to it. A process
    SIGKILL does not end (stuck in the kernel) raises ProcessReapError after `REAP_TIMEOUT`.
    `user`, when given, is who the process runs as (the runner must be root to give it).
    """
    pid, stream, waiter, feeder, close = await _spawn(argv, cwd, env, stdin, usage, user=user)
    reader = asyncio.create_task(_pump(stream, output))
    canceled = asyncio.create_task(cancel.wait())
    helpers: list[asyncio.Task[object]] = [reader, canceled, *([feeder] if feeder else [])]
    given_up = False  # on a process that SIGKILL did not end
    try:
        done, _ = await asyncio.wait(
            {waiter, canceled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter in done:
            outcome = Outcome.EXITED
        else:
            outcome = Outcome.CANCELED if canceled in done else Outcome.TIMED_OUT
            try:
                await _stop(pid, waiter, kill_timeout)
            except ProcessReapError:
                given_up = True
                raise
        # Whatever the script left behind in its group goes too.
        signal_group(pid, signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT)
    finally:
        await _leave(pid, waiter, helpers, given_up)
        # Our end of the pipe: a process that left the session may still hold the other end.
        close()
    return ScriptResult(outcome, waiter.result())


async def _leave(
    pid: int, waiter: asyncio.Task[int | None], helpers: list[asyncio.Task[object]], given_up: bool
) -> None:
    """Cancel the helper tasks; on an error or a cancellation, kill and reap the group."""
    for task in helpers:
        task.cancel()
    if given_up:
        LEFT_BEHIND.add(waiter)
        waiter.add_done_callback(LEFT_BEHIND.discard)
    elif not waiter.done():
        # Leaving on an error or a cancellation: that error, not this wait, is the news.
        signal_group(pid, signal.SIGKILL)
        try:
            await _reap(pid, waiter)
        except ProcessReapError as exc:
            log.error("%s", exc)


_Spawned = tuple[
    int,
    asyncio.StreamReader,
    "asyncio.Task[int | None]",
    "asyncio.Task[None] | None",
    Callable[[], None],
]


async def _spawn(
    argv: Sequence[str],
    cwd: Path | None,
    env: Mapping[str, str],
    stdin: bytes | None,
    usage: list[ResourceUsage] | None,
    *,
    user: RunAs | None,
) -> _Spawned:
    """Start `argv` in a new session: its pid, output, exit (code), stdin feeder, pipe closer."""
    if usage is not None and stdin is None and hasattr(os, "pidfd_open"):
        return await _spawn_measured(argv, cwd, env, usage, user)
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.subprocess_exec(
        lambda: _ExitProtocol(loop),
        *argv,
        cwd=cwd,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        user=user.uid if user else None,
        group=user.gid if user else None,
        extra_groups=list(user.groups) if user else None,
    )
    proc = asyncio.subprocess.Process(transport, protocol, loop)
    assert proc.stdout is not None
    feeder = asyncio.create_task(_feed(proc.stdin, stdin)) if stdin is not None else None

    async def exited() -> int | None:
        await protocol.wait_exited()
        return proc.returncode

    return proc.pid, proc.stdout, asyncio.create_task(exited()), feeder, transport.close


async def _spawn_measured(
    argv: Sequence[str],
    cwd: Path | None,
    env: Mapping[str, str],
    usage: list[ResourceUsage],
    user: RunAs | None,
) -> _Spawned:
    """Start `argv` and reap it with wait4(), which gives the rusage of its process tree.

    asyncio reaps its subprocesses with waitpid(), which drops the rusage; so
    this one is a plain Popen whose pipe joins the loop, and its exit is seen
    on a pidfd. wait4() counts every descendant that was waited for.
    """
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        user=user.uid if user else None,
        group=user.gid if user else None,
        extra_groups=list(user.groups) if user else None,
    )
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader(limit=READ_SIZE, loop=loop)
    pipe, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream, loop=loop), proc.stdout
    )
    reaper = asyncio.create_task(_reap_measured(proc, os.pidfd_open(proc.pid), usage))
    return proc.pid, stream, reaper, None, pipe.close


async def _reap_measured(
    proc: subprocess.Popen[bytes], pidfd: int, usage: list[ResourceUsage]
) -> int | None:
    """Wait for `proc` to exit (its pidfd turns readable), then wait4() it for its rusage."""
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, readable)
    try:
        await exited
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    _, status, used = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    usage.append(ResourceUsage(used.ru_utime + used.ru_stime, used.ru_maxrss * 1024))
    return proc.returncode


class _ExitProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The protocol of `asyncio.create_subprocess_exec`, telling when the process exits.

    `Process.wait()` returns only once every pipe is closed too (Python 3.11), so a
    background process that left the session with our stdout would hold the step
    open for as long as it lives; the step ends when its own process exits.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=READ_SIZE, loop=loop)
        self._exited = asyncio.Event()

    def process_exited(self) -> None:
        super().process_exited()
        self._exited.set()

    async def wait_exited(self) -> None:
        await self._exited.wait()


async def _stop(pid: int, waiter: asyncio.Task[int | None], grace: float) -> None:
    signal_group(pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(asyncio.shield(waiter), grace)
    except TimeoutError:
        log.warning("process group %d ignored SIGTERM; sending SIGKILL", pid)
        signal_group(pid, signal.SIGKILL)
        await _reap(pid, waiter)


async def _reap(pid: int, waiter: asyncio.Task[int | None]) -> None:
    """Wait for a killed process to go, for `REAP_TIMEOUT` at most; else raise ProcessReapError."""
    try:
        await asyncio.wait_for(asyncio.shield(waiter), REAP_TIMEOUT)
    except TimeoutError:
        raise ProcessReapError(
            f"process {pid} is still there {REAP_TIMEOUT:g}s after SIGKILL "
            "(stuck in the kernel?); it is left behind"
        ) from None


async def _pump(stream: asyncio.StreamReader, output: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(READ_SIZE):
        output(chunk)


async def _feed(stream: asyncio.StreamWriter | None, data: bytes) -> None:
    if stream is None:
        return
    # A process that exits without reading all of its input is not an error here.
    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
        stream.write(data)
        await stream.drain()
        stream.close()
        await stream.wait_closed()


def signal_group(pgid: int, sig: signal.Signals) -> None:
    """Send `sig` to the process group `pgid`, if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
