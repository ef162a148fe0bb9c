"""run_process_group in-process on real children: stop, kill, a process SIGKILL does not end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from alloy_runner.exceptions import ProcessReapError
from alloy_runner.executors import process
from alloy_runner.executors.base import Outcome, ScriptResult

# Prints its pid, then waits; SIGTERM is ignored by the shell and, inherited, by sleep.
STUBBORN = ("bash", "-c", "trap '' TERM; echo $$; exec sleep 60")
GUARD = 20.0  # seconds a scenario may take before the test fails instead of hanging


async def _run(argv: tuple[str, ...], out: list[bytes]) -> ScriptResult:
    """Run `argv` for 0.5 s at most, with 0.2 s between SIGTERM and SIGKILL."""
    return await asyncio.wait_for(
        process.run_process_group(
            argv,
            cwd=None,
            env=os.environ,
            output=out.append,
            timeout=0.5,
            cancel=asyncio.Event(),
            kill_timeout=0.2,
        ),
        GUARD,
    )


def test_a_process_that_ignores_sigterm_is_killed_and_reaped() -> None:
    """TERM first, KILL after kill_timeout; the process is reaped and its status is SIGKILL's."""
    out: list[bytes] = []
    result = asyncio.run(_run(STUBBORN, out))
    assert result.outcome is Outcome.TIMED_OUT
    assert result.exit_code == -signal.SIGKILL
    pid = int(b"".join(out).split()[0])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_process_sigkill_does_not_end_raises_after_the_backup_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process still there REAP_TIMEOUT after SIGKILL ends the wait with ProcessReapError.

    A process stuck in the kernel cannot be made here, so the SIGKILL is what is faked:
    the signals to the group are recorded and SIGKILL is not sent.
    """
    sent: list[tuple[int, signal.Signals]] = []
    real = process.signal_group

    def signal_group(pgid: int, sig: signal.Signals) -> None:
        sent.append((pgid, sig))
        if sig is not signal.SIGKILL:
            real(pgid, sig)

    monkeypatch.setattr(process, "signal_group", signal_group)
    monkeypatch.setattr(process, "REAP_TIMEOUT", 0.3)
    out: list[bytes] = []

    async def scenario() -> ProcessReapError:
        try:
            with pytest.raises(ProcessReapError) as caught:
                await _run(STUBBORN, out)
            # The wait gave up without seeing an exit; it goes on in the background.
            assert len(process.LEFT_BEHIND) == 1
        finally:
            for pgid in {pgid for pgid, _ in sent}:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
        # Once it does end, the wait left behind sees it and closes its pipes.
        await asyncio.wait_for(asyncio.gather(*process.LEFT_BEHIND), GUARD)
        assert not process.LEFT_BEHIND
        return caught.value

    error = asyncio.run(scenario())
    pid = int(b"".join(out).split()[0])
    assert str(error) == (
        f"process {pid} is still there 0.3s after SIGKILL (stuck in the kernel?); it is left behind"
    )
    assert [sig for _, sig in sent] == [signal.SIGTERM, signal.SIGKILL]
