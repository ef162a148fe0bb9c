"""ShellExecutor in-process: real bash process groups, their exits, timeouts, cancels, leftovers."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from alloy_runner.build.states import ExecutorStage
from alloy_runner.executors.base import Outcome, ScriptResult, Workspace
from alloy_runner.executors.shell import ShellExecutor
from tests.support.jobs import process_alive
from tests.support.polling import wait_until

T = TypeVar("T")
KILL_TIMEOUT = 0.3


class Shell:
    """A prepared ShellExecutor with its workspace, the output it streamed and its stages."""

    def __init__(self, tmp_path: Path, shell: str = "bash") -> None:
        self.executor = ShellExecutor(shell=shell, kill_timeout=KILL_TIMEOUT)
        self.project = tmp_path / "project"
        self.output = bytearray()
        self.stages: list[ExecutorStage] = []
        self.cancel = asyncio.Event()
        self.workspace: Workspace | None = None

    async def prepare(self) -> Workspace:
        self.workspace = await self.executor.prepare(self.project, self.stages.append)
        return self.workspace

    async def run(
        self, script: str, timeout: float | None = 10.0, env: dict[str, str] | None = None
    ) -> ScriptResult:
        workspace = self.workspace or await self.prepare()
        return await self.executor.run(
            script,
            workspace=workspace,
            env={"PATH": os.environ["PATH"], **(env or {})},
            output=self.output.extend,
            timeout=timeout,
            cancel=self.cancel,
        )


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), 30)

    return asyncio.run(bounded())


def test_a_script_runs_in_the_project_directory_with_its_environment(tmp_path: Path) -> None:
    """The script runs in the project directory, sees its env, and its output is streamed."""
    shell = Shell(tmp_path)
    result = run(
        lambda: shell.run('echo "$GREETING from $(pwd)"; echo oops >&2', env={"GREETING": "hi"})
    )
    assert result == ScriptResult(Outcome.EXITED, 0)
    assert result.ok
    assert shell.output.decode() == f"hi from {shell.project}\noops\n"


def test_the_exit_code_of_a_failing_script_is_kept(tmp_path: Path) -> None:
    """A script that exits 7 ends as exited with code 7, which is not ok."""
    result = run(lambda: Shell(tmp_path).run("exit 7"))
    assert (result.outcome, result.exit_code, result.ok) == (Outcome.EXITED, 7, False)


def test_sh_can_be_the_shell(tmp_path: Path) -> None:
    """A runner whose `shell` is sh runs its scripts with sh."""
    shell = Shell(tmp_path, shell="sh")
    result = run(lambda: shell.run('echo "$0"'))
    assert result.ok
    assert shell.output.decode().strip().endswith("script.sh")


def test_a_timed_out_script_and_its_children_are_stopped(tmp_path: Path) -> None:
    """Past its timeout a script ends as timed out, and the children it started end with it."""
    shell = Shell(tmp_path)
    pid_file = tmp_path / "child.pid"
    result = run(lambda: shell.run(f"sleep 60 & echo $! > {pid_file}; wait", timeout=0.5))
    assert result.outcome is Outcome.TIMED_OUT
    child = int(pid_file.read_text())
    wait_until(lambda: not process_alive(child), 5, 0.02, "the child gone")


def test_a_canceled_script_ignoring_term_is_killed(tmp_path: Path) -> None:
    """A cancel sends TERM; a script that ignores it is KILLed after kill_timeout."""
    shell = Shell(tmp_path)
    started = tmp_path / "started"

    async def main() -> tuple[ScriptResult, float]:
        running = asyncio.create_task(
            shell.run(f"trap '' TERM; touch {started}; while true; do sleep 0.05; done", None)
        )
        loop = asyncio.get_running_loop()
        while not started.exists():
            await asyncio.sleep(0.01)
        began = loop.time()
        shell.cancel.set()
        result = await running
        return result, loop.time() - began

    result, took = run(main)
    assert result.outcome is Outcome.CANCELED
    assert result.exit_code == -9
    assert took >= KILL_TIMEOUT


def test_background_processes_left_behind_are_killed_at_the_end(tmp_path: Path) -> None:
    """A background process a script leaves behind is killed; the script's result stands."""
    shell = Shell(tmp_path)
    pid_file = tmp_path / "bg.pid"
    result = run(lambda: shell.run(f"(sleep 60 >/dev/null 2>&1 &\necho $! > {pid_file})"))
    assert result == ScriptResult(Outcome.EXITED, 0)
    background = int(pid_file.read_text())
    wait_until(lambda: not process_alive(background), 5, 0.02, "the background process gone")


def test_prepare_makes_a_private_tmp_dir_and_cleanup_removes_it(tmp_path: Path) -> None:
    """prepare creates the project and a private temporary directory; cleanup removes the latter."""
    shell = Shell(tmp_path)

    async def main() -> Workspace:
        workspace = await shell.prepare()
        assert workspace.project_dir.is_dir() and workspace.tmp_dir.is_dir()
        await shell.executor.cleanup(shell.stages.append)
        return workspace

    workspace = run(main)
    assert workspace.project_dir == shell.project
    assert not workspace.tmp_dir.exists()
    assert shell.project.is_dir(), "the project directory stays for the next build"
    assert shell.stages == [ExecutorStage.PREPARE, ExecutorStage.CLEANUP]
