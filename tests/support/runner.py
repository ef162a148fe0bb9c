"""Start the real `alloy-runner` executable, hermetically, and always stop it."""

from __future__ import annotations

import contextlib
import os
import re
import signal as signals
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from prometheus_client.metrics_core import Metric

from tests.support.exposition import parse_exposition
from tests.support.http_client import DEFAULT_TIMEOUT, Reply, http_request
from tests.support.polling import wait_notified
from tests.support.service import Service

# The console script installed next to the interpreter running the tests (.venv/bin).
ALLOY_RUNNER = str(Path(sys.executable).with_name("alloy-runner"))

LISTENING = re.compile(r"metrics server listening on (?P<address>\S+) \(/metrics\)")
STARTED = re.compile(r"alloy-runner \S+ started: ")

# Variables of the developer's shell that would change what the runner does.
_SCRUBBED = ("CONFIG_FILE", "METRICS_SERVER")
_SCRUBBED_PREFIXES = ("OTEL_", "PYROSCOPE_")


def runner_env(home: Path, extra: Mapping[str, str | None] | None = None) -> dict[str, str]:
    """Return an environment with HOME at `home` and no inherited runner settings.

    `extra` sets variables; a value of None removes one.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED and not k.startswith(_SCRUBBED_PREFIXES)
    }
    env["HOME"] = str(home)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_cli(
    args: Sequence[str],
    home: Path,
    env: Mapping[str, str | None] | None = None,
    timeout: float = 20.0,
) -> subprocess.CompletedProcess[str]:
    """Run `alloy-runner ARGS` to completion and return its exit status, stdout and stderr."""
    return subprocess.run(
        [ALLOY_RUNNER, *args],
        env=runner_env(home, env),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def split_hostport(text: str) -> tuple[str, int]:
    """Split `host:port` or `[v6host]:port` as the runner logs it."""
    host, _, port = text.rpartition(":")
    return host.removeprefix("[").removesuffix("]"), int(port)


class RunnerExited(AssertionError):
    """The runner ended (or never said what was awaited) while a test waited for a log line."""


class RunnerProcess(Service):
    """One `alloy-runner run` process with its config in `home`, stopped on exit.

    `config` is the text of `home/config.toml`, passed with `--config`; None runs
    without `--config`. `metrics_server` is passed with `--metrics-server`; None
    leaves the flag out. HOME is `home`, so nothing touches the real home.
    `start()` returns once the process has installed its signal handlers (its
    "started" line); by then the metrics server, when enabled, is listening.
    """

    def __init__(
        self,
        home: Path,
        config: str | None = "",
        *,
        metrics_server: str | None = "127.0.0.1:0",
        args: Sequence[str] = (),
        env: Mapping[str, str | None] | None = None,
        startup_timeout: float = 15.0,
        stdout: Path | None = None,
    ) -> None:
        self.home = home
        self._stdout = stdout  # a file for what the process prints on stdout (None: discarded)
        self.config_path = home / "config.toml"
        self._config = config
        self._metrics_server = metrics_server
        self._args = tuple(args)
        self._env = runner_env(home, env)
        self._startup_timeout = startup_timeout
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self.address: tuple[str, int] | None = None

    @property
    def command(self) -> list[str]:
        """Return the command line the process runs."""
        command = [ALLOY_RUNNER, "run"]
        if self._config is not None:
            command += ["--config", str(self.config_path)]
        if self._metrics_server is not None:
            command += ["--metrics-server", self._metrics_server]
        return [*command, *self._args]

    def write_config(self, text: str) -> None:
        """Replace the config file (a SIGHUP makes the process read it again)."""
        self.config_path.write_text(text, encoding="utf-8")

    def start(self) -> RunnerProcess:
        """Start the process and wait until it runs; fail with its stderr if it ends instead."""
        if self._config is not None:
            self.write_config(self._config)
        out = self._stdout.open("ab") if self._stdout is not None else subprocess.DEVNULL
        self._proc = subprocess.Popen(
            self.command,
            env=self._env,
            cwd=self.home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # a ^C at the terminal reaches pytest, not the runner
        )
        if not isinstance(out, int):
            out.close()  # the child holds its own copy
        self._reader = threading.Thread(
            target=self._read, args=(self._proc,), name="runner-stderr", daemon=True
        )
        self._reader.start()
        try:
            self.wait_for_line(STARTED, timeout=self._startup_timeout)
            for line in self.stderr_lines:
                if match := LISTENING.search(line):
                    self.address = split_hostport(match["address"])
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def pid(self) -> int:
        """Return the process id."""
        assert self._proc is not None, "not started"
        return self._proc.pid

    @property
    def stderr_lines(self) -> list[str]:
        """Return every line the process wrote to stderr so far."""
        with self._changed:
            return list(self._lines)

    @property
    def stderr_text(self) -> str:
        """Return stderr so far as one string (for assertion messages)."""
        return "\n".join(self.stderr_lines)

    def wait_for_line(
        self, pattern: str | re.Pattern[str], timeout: float = 5.0, start: int = 0
    ) -> re.Match[str]:
        """Return the match of the first stderr line, from index `start` on, matching `pattern`."""
        regex = re.compile(pattern)
        index = start

        def logged() -> re.Match[str] | None:
            nonlocal index
            while index < len(self._lines):
                if match := regex.search(self._lines[index]):
                    return match
                index += 1
            if self._reader is None or not self._reader.is_alive():
                raise RunnerExited(
                    f"waiting for {regex.pattern!r}: the runner exited; stderr:\n"
                    + "\n".join(self._lines)
                )
            return None

        return wait_notified(
            self._changed,
            logged,
            timeout,
            lambda: (
                f"{regex.pattern!r} in the runner's stderr, which is:\n" + "\n".join(self._lines)
            ),
            error=RunnerExited,
        )

    @property
    def host(self) -> str:
        """Return the host the metrics server listens on."""
        assert self.address is not None, "the metrics server is not listening"
        return self.address[0]

    @property
    def port(self) -> int:
        """Return the port the metrics server listens on."""
        assert self.address is not None, "the metrics server is not listening"
        return self.address[1]

    def url(self, path: str = "/metrics") -> str:
        """Return the URL of `path` on the metrics server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Reply:
        """Send one HTTP request to the metrics server."""
        return http_request(self.host, self.port, method, path, headers, body, timeout)

    def scrape(self, accept: str | None = None) -> tuple[dict[str, str], str]:
        """GET /metrics (with `Accept: accept` if given); return the headers and the text."""
        reply = self.request("GET", "/metrics", {"Accept": accept} if accept else None)
        assert reply.status == 200, f"GET /metrics answered {reply.status}: {reply.text}"
        return reply.headers, reply.text

    def families(self) -> dict[str, Metric]:
        """Scrape /metrics and return it parsed into families by name."""
        return parse_exposition(self.scrape()[1])

    def signal(self, sig: signals.Signals) -> None:
        """Send `sig` to the process."""
        assert self._proc is not None, "not started"
        self._proc.send_signal(sig)

    def wait(self, timeout: float = 10.0) -> int:
        """Wait for the process to end and return its exit status."""
        assert self._proc is not None, "not started"
        returncode = self._proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return returncode

    def stop(self) -> None:
        """Kill the process (and anything it started) unless it has ended; safe to call twice."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signals.SIGKILL)
        proc.wait(10)
        if self._reader is not None:
            self._reader.join(10)
        if proc.stderr is not None:
            proc.stderr.close()


StartRunner = Callable[..., RunnerProcess]
"""The type of the `start_runner` fixture: `start(config="", **kwargs) -> RunnerProcess`."""
