"""The shell executor: each stage script is a bash process group on this host."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from alloy_runner.build.states import ExecutorStage
from alloy_runner.executors.base import Outcome, ScriptResult, Workspace

log = logging.getLogger(__name__)

READ_SIZE = 65536
DRAIN_TIMEOUT = 2.0  # how long output of leftover background processes is read after exit


class ShellExecutor:
    """Run stage scripts with bash in a per-build project directory.

    Every script runs in a new session, so the whole process group can be
    stopped: TERM first, KILL after `kill_timeout` seconds.
    """

    name = "shell"

    def __init__(self, shell: str = "bash", kill_timeout: float = 10.0) -> None:
        self._shell = shell
        self._kill_timeout = kill_timeout
        self._tmp: Path | None = None

    async def prepare(
        self, workspace_hint: Path, set_stage: Callable[[ExecutorStage], None]
    ) -> Workspace:
        set_stage(ExecutorStage.PREPARE)
        workspace_hint.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix="alloy-build-"))
        return Workspace(project_dir=workspace_hint, tmp_dir=self._tmp)

    async def run(
        self,
        script: str,
        *,
        workspace: Workspace,
        env: Mapping[str, str],
        output: Callable[[bytes], None],
        timeout: float | None,
        cancel: asyncio.Event,
    ) -> ScriptResult:
        path = workspace.tmp_dir / "script.sh"
        path.write_text(script)
        # bash reads no startup files; dash (sh on Debian) has no such options and reads none.
        flags = ("--noprofile", "--norc") if Path(self._shell).name == "bash" else ()
        proc = await asyncio.create_subprocess_exec(
            self._shell, *flags, str(path),
            cwd=workspace.project_dir, env=dict(env),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        reader = asyncio.create_task(_pump(proc.stdout, output))
        waiter = asyncio.create_task(proc.wait())
        canceled = asyncio.create_task(cancel.wait())
        try:
            done, _ = await asyncio.wait(
                {waiter, canceled}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if waiter in done:
                outcome = Outcome.EXITED
            else:
                outcome = Outcome.CANCELED if canceled in done else Outcome.TIMED_OUT
                await self._stop(proc, waiter)
            # Whatever the script left behind in its group goes too.
            _signal_group(proc.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(reader), DRAIN_TIMEOUT)
        finally:
            canceled.cancel()
            reader.cancel()
            if not waiter.done():
                _signal_group(proc.pid, signal.SIGKILL)
                await waiter
        return ScriptResult(outcome, proc.returncode)

    async def _stop(self, proc: asyncio.subprocess.Process, waiter: asyncio.Task[int]) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._kill_timeout)
        except TimeoutError:
            log.warning("process group %d ignored SIGTERM; sending SIGKILL", proc.pid)
            _signal_group(proc.pid, signal.SIGKILL)
            await waiter

    async def cleanup(self, set_stage: Callable[[ExecutorStage], None]) -> None:
        set_stage(ExecutorStage.CLEANUP)
        tmp, self._tmp = self._tmp, None
        if tmp is not None:
            await asyncio.to_thread(_remove_tree, tmp)


async def _pump(stream: asyncio.StreamReader, output: Callable[[bytes], None]) -> None:
    while chunk := await stream.read(READ_SIZE):
        output(chunk)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
