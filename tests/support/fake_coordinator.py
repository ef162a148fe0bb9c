"""A fake GitLab / AlloyCI coordinator that speaks the Runner API v4, on 127.0.0.1, always stopped.

It is stateful the way the real one is: a job queue with long polling
(`X-GitLab-Last-Update`), job states and the `Job-Status` header, a trace
store that honours `Content-Range` and answers 416 with the `Range` it holds,
a final update checked against the trace's size and CRC32 (412 when they
differ), artifacts storage, runner registration and verification. Faults can
be switched on for a while: 5xx answers, stalls and connection resets before
a request is processed, and replies lost after an idempotent one was.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.loopback import LoopbackHTTPServer, QuietHandler
from tests.support.polling import wait_notified

if TYPE_CHECKING:
    from tests.support.runner import RunnerProcess

API = "/api/v4"
FINAL = ("success", "failed", "canceled")
FAULTS = ("500", "503", "stall", "reset", "lose_reply", "bad_201")
IDEMPOTENT = ("patch_trace", "update_job")  # the endpoints a lost reply may be injected on

_ROUTES = (
    ("POST", re.compile(r"/runners"), "register_runner"),
    ("POST", re.compile(r"/runners/verify"), "verify_runner"),
    ("DELETE", re.compile(r"/runners"), "unregister_runner"),
    ("POST", re.compile(r"/runners/reset_authentication_token"), "reset_token"),
    ("POST", re.compile(r"/jobs/request"), "request_job"),
    ("PUT", re.compile(r"/jobs/(\d+)"), "update_job"),
    ("PATCH", re.compile(r"/jobs/(\d+)/trace"), "patch_trace"),
    ("POST", re.compile(r"/jobs/(\d+)/artifacts"), "upload_artifacts"),
    ("GET", re.compile(r"/jobs/(\d+)/artifacts"), "download_artifacts"),
)


StartFake = Callable[..., "FakeCoordinator"]
"""The `start_fake` fixture: `start(**kwargs)` returns a started FakeCoordinator."""

StartGitlabRunner = Callable[..., "RunnerProcess"]
"""The `start_gitlab_runner` fixture: `start(fake, **config)` returns a runner using `fake`."""


def gitlab_config(
    fake: FakeCoordinator, *, token: str | None = None, extra: str = "", top: str = ""
) -> str:
    """Return a config.toml with one runner `gl` taking jobs from `fake`."""
    return (
        f"concurrent = 4\ncheck_interval = 0.2\n{top}\n"
        "[[runners]]\n"
        'name = "gl"\n'
        f'url = "{fake.url}"\n'
        f'token = "{token if token is not None else fake.runner_token}"\n'
        f"{extra}"
    )


@dataclass
class StoredArtifact:
    """An artifacts archive a job uploaded, with the form fields that came with it."""

    filename: str
    data: bytes
    fields: dict[str, str]


@dataclass
class FakeJob:
    """One job as the coordinator keeps it."""

    id: int
    token: str
    name: str
    payload: dict[str, Any]
    enqueued_at: float
    status: str = "pending"
    trace: bytearray = field(default_factory=bytearray)
    patches: list[tuple[int, int]] = field(default_factory=list)  # accepted (start, length)
    range_mismatches: int = 0
    checksum_mismatches: int = 0
    artifacts: list[StoredArtifact] = field(default_factory=list)
    downloads: list[tuple[int, str]] = field(default_factory=list)  # (job id, token used)
    updates: list[dict[str, Any]] = field(default_factory=list)  # every PUT body, token removed
    final: dict[str, Any] | None = None
    final_updates: int = 0
    picked: int = 0

    @property
    def done(self) -> bool:
        return self.status in FINAL


@dataclass
class Fault:
    kinds: tuple[str, ...]
    until: float
    count: int | None
    endpoints: frozenset[str] | None
    stall: float
    next: int = 0


@dataclass(frozen=True)
class Seen:
    """One request the fake received: its endpoint, and the status (or fault) it got."""

    method: str
    endpoint: str
    outcome: str
    at: float


class FakeCoordinator(LoopbackHTTPServer):
    """The coordinator's state, and the HTTP server in front of it (start/stop, or `with`)."""

    def __init__(
        self,
        *,
        registration_token: str = "reg-token-fake",
        runner_tokens: Iterable[str] = (),
        long_poll: float = 0.0,
        trace_interval: float | None = None,
        tls: ssl.SSLContext | None = None,
        max_artifact_size: int | None = None,
        token_expires_at: str | None = None,
    ) -> None:
        super().__init__(type("Handler", (_Handler,), {"fake": self}), tls=tls)
        self.registration_token = registration_token
        self.runner_tokens = set(runner_tokens) or {f"glrt-{secrets.token_hex(10)}"}
        self.long_poll = long_poll
        self.trace_interval = trace_interval
        self.max_artifact_size = max_artifact_size
        # Runner records by token, as GitLab keeps them: id, and what registration said.
        self.token_expires_at = token_expires_at  # ISO 8601, as GitLab sends it; None: never
        self.runners: dict[str, dict[str, Any]] = {
            token: {"id": index + 1} for index, token in enumerate(sorted(self.runner_tokens))
        }
        self.lock = threading.Condition()
        self.jobs: dict[int, FakeJob] = {}
        self.queue: list[int] = []
        self.version = secrets.token_hex(4)
        self.seen: list[Seen] = []
        self.request_bodies: list[dict[str, Any]] = []
        self.job_request_tokens: list[str] = []  # the runner token of each jobs/request, in order
        self.faults_injected: dict[str, int] = {}
        self._fault: Fault | None = None
        self._next_id = 1000
        self._stopping = False

    # --- life ------------------------------------------------------------------------------

    @property
    def runner_token(self) -> str:
        """Return a token this coordinator accepts (the first one it knows)."""
        return sorted(self.runner_tokens)[0]

    def stop(self) -> None:
        """Stop serving and release every held request; safe to call twice."""
        with self.lock:
            self._stopping = True
            self.lock.notify_all()
        super().stop()

    # --- what a test does ------------------------------------------------------------------

    def add_job(
        self,
        name: str,
        script: Sequence[str],
        *,
        artifacts: Sequence[str] = (),
        dependencies: Sequence[FakeJob] = (),
        variables: Sequence[dict[str, Any]] = (),
        timeout: int = 3600,
        extra: dict[str, Any] | None = None,
        job_info: dict[str, Any] | None = None,
    ) -> FakeJob:
        """Queue a job whose `script` lines run in the build; it goes to the next request.

        `extra` adds keys to the payload (`image`, `services`), `job_info` to its `job_info`.
        """
        with self.lock:
            self._next_id += 1
            job_id = self._next_id
            token = f"jt-{job_id}-{secrets.token_hex(8)}"
            payload: dict[str, Any] = {
                "id": job_id,
                "token": token,
                "allow_git_fetch": False,
                "job_info": {
                    "name": name,
                    "stage": "test",
                    "project_id": 7,
                    "project_name": "fake-project",
                    **(job_info or {}),
                },
                "git_info": {"repo_url": "", "ref": "main", "sha": "0" * 40},
                "runner_info": {"timeout": timeout},
                "variables": [
                    {"key": "CI_PIPELINE_ID", "value": "1", "public": True},
                    *variables,
                ],
                "steps": [
                    {
                        "name": "script",
                        "script": list(script),
                        "timeout": timeout,
                        "when": "on_success",
                        "allow_failure": False,
                    },
                ],
                "artifacts": (
                    [
                        {
                            "name": "artifacts",
                            "paths": list(artifacts),
                            "when": "on_success",
                            "artifact_type": "archive",
                            "artifact_format": "zip",
                            "expire_in": "1 day",
                        }
                    ]
                    if artifacts
                    else []
                ),
                "cache": [],
                "dependencies": [
                    {
                        "id": d.id,
                        "name": d.name,
                        "token": d.token,
                        "artifacts_file": {
                            "filename": "artifacts.zip",
                            "size": len(d.artifacts[0].data) if d.artifacts else 0,
                        },
                    }
                    for d in dependencies
                ],
            }
            payload.update(extra or {})
            job = FakeJob(job_id, token, name, payload, time.monotonic())
            self.jobs[job_id] = job
            self.queue.append(job_id)
            self.version = secrets.token_hex(4)
            self.lock.notify_all()
            return job

    def cancel(self, job: FakeJob) -> None:
        """Cancel a job: a queued one at once, a running one through `Job-Status: canceling`."""
        with self.lock:
            if job.id in self.queue:
                self.queue.remove(job.id)
                job.status = "canceled"
            elif job.status == "running":
                job.status = "canceling"

    def fail(
        self,
        kinds: Sequence[str],
        *,
        seconds: float | None = None,
        count: int | None = None,
        endpoints: Iterable[str] | None = None,
        stall: float = 2.0,
    ) -> None:
        """Answer requests with `kinds` of faults, in turn, for `seconds` or `count` requests."""
        assert all(k in FAULTS for k in kinds), kinds
        until = time.monotonic() + seconds if seconds is not None else float("inf")
        with self.lock:
            self._fault = Fault(
                tuple(kinds), until, count, frozenset(endpoints) if endpoints else None, stall
            )

    def recover(self) -> None:
        """Stop injecting faults."""
        with self.lock:
            self._fault = None

    def lose_trace_tail(self, job: FakeJob, size: int) -> None:
        """Forget the last `size` bytes of a job's trace (the runner learns it from a 416)."""
        with self.lock:
            del job.trace[max(0, len(job.trace) - size) :]

    def wait_done(self, jobs: Iterable[FakeJob], timeout: float = 30.0) -> None:
        """Wait until every job in `jobs` has its final state."""
        wanted = list(jobs)
        wait_notified(
            self.lock,
            lambda: all(j.done for j in wanted),
            timeout,
            lambda: f"jobs to be done; their states: { {j.id: j.status for j in wanted} }",
        )

    def count(self, endpoint: str, outcome: str | None = None) -> int:
        """Return how many requests reached `endpoint` (that got `outcome`, if given)."""
        with self.lock:
            return sum(
                1
                for s in self.seen
                if s.endpoint == endpoint and (outcome is None or s.outcome == outcome)
            )

    # --- the protocol ----------------------------------------------------------------------

    def take_fault(self, endpoint: str) -> tuple[str, float] | None:
        with self.lock:
            fault = self._fault
            if fault is None:
                return None
            if time.monotonic() >= fault.until or fault.count == 0:
                self._fault = None
                return None
            if fault.endpoints is not None and endpoint not in fault.endpoints:
                return None
            kinds = [k for k in fault.kinds if k != "lose_reply" or endpoint in IDEMPOTENT]
            if not kinds:
                return None
            kind = kinds[fault.next % len(kinds)]
            fault.next += 1
            if fault.count is not None:
                fault.count -= 1
            self.faults_injected[kind] = self.faults_injected.get(kind, 0) + 1
            return kind, fault.stall

    def note(self, method: str, endpoint: str, outcome: str) -> None:
        with self.lock:
            self.seen.append(Seen(method, endpoint, outcome, time.monotonic()))
            self.lock.notify_all()

    def handle(self, endpoint: str, ids: Sequence[str], req: Request) -> Reply:
        handler = getattr(self, f"_{endpoint}")
        with self.lock:
            reply: Reply = handler(int(ids[0]) if ids else 0, req)
            self.lock.notify_all()
            return reply

    def _new_runner_token(self, record: dict[str, Any]) -> str:
        token = f"glrt-{secrets.token_hex(10)}"
        self.runner_tokens.add(token)
        self.runners[token] = record
        return token

    def _token_reply(self, status: int, token: str) -> Reply:
        record = self.runners.setdefault(token, {"id": len(self.runners) + 1})
        return Reply(
            status,
            {"id": record["id"], "token": token, "token_expires_at": self.token_expires_at},
        )

    def _register_runner(self, _id: int, req: Request) -> Reply:
        """POST /runners: the deprecated registration with a registration token (201)."""
        body = req.json()
        if body.get("token") != self.registration_token:
            return Reply(403, {"message": "403 Forbidden"})
        fields = {k: v for k, v in body.items() if k != "token"}
        self.request_bodies.append(fields)
        token = self._new_runner_token({"id": len(self.runners) + 1, **fields})
        return self._token_reply(201, token)

    def _verify_runner(self, _id: int, req: Request) -> Reply:
        """POST /runners/verify: 200 with the runner's id and token expiry, 403 if unknown."""
        token = req.json().get("token")
        if token in self.runner_tokens:
            return self._token_reply(200, token)
        return Reply(403, {"message": "403 Forbidden"})

    def _unregister_runner(self, _id: int, req: Request) -> Reply:
        """DELETE /runners: 204, and the token is gone; 403 if unknown."""
        token = req.json().get("token")
        if token not in self.runner_tokens:
            return Reply(403, {"message": "403 Forbidden"})
        self.runner_tokens.discard(token)
        self.runners.pop(token, None)
        return Reply(204)

    def _reset_token(self, _id: int, req: Request) -> Reply:
        """POST /runners/reset_authentication_token: 201 with a new token; the old one dies."""
        token = req.json().get("token")
        if token not in self.runner_tokens:
            return Reply(403, {"message": "403 Forbidden"})
        self.runner_tokens.discard(token)
        record = self.runners.pop(token, {"id": len(self.runners) + 1})
        return self._token_reply(201, self._new_runner_token(record))

    def _request_job(self, _id: int, req: Request) -> Reply:
        body = req.json()
        self.job_request_tokens.append(str(body.get("token")))
        if body.get("token") not in self.runner_tokens:
            return Reply(403, {"message": "403 Forbidden"})
        self.request_bodies.append({k: v for k, v in body.items() if k != "token"})
        last = body.get("last_update")
        if self.long_poll > 0 and last == self.version and not self.queue:
            self.lock.wait_for(
                lambda: self.version != last or self._stopping or bool(self.queue),
                timeout=self.long_poll,
            )
        headers = {"X-GitLab-Last-Update": self.version}
        if not self.queue:
            return Reply(204, None, headers)
        job = self.jobs[self.queue.pop(0)]
        job.status = "running"
        job.picked += 1
        payload = json.loads(json.dumps(job.payload))
        payload["job_info"]["time_in_queue_seconds"] = round(time.monotonic() - job.enqueued_at, 3)
        return Reply(201, payload, headers)

    def _job_for(self, job_id: int, token: str | None) -> FakeJob | Reply:
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, {"message": "404 Not Found"})
        if token != job.token:
            return Reply(403, {"message": "403 Forbidden"})
        return job

    def _update_job(self, job_id: int, req: Request) -> Reply:
        body = req.json()
        job = self._job_for(job_id, body.get("token"))
        if isinstance(job, Reply):
            return job
        job.updates.append({k: v for k, v in body.items() if k != "token"})
        state = body.get("state")
        headers = {"Job-Status": job.status}
        if job.done:  # a retried final update, whose first answer was lost
            return Reply(200 if state in FINAL else 403, {}, headers)
        if state == "running":
            return Reply(200, {}, headers)
        if state not in ("success", "failed"):
            return Reply(400, {"message": f"400 Bad request - state {state!r}"})
        output = body.get("output") or {}
        expected = f"crc32:{zlib.crc32(job.trace):08x}"
        if output and (
            output.get("bytesize") != len(job.trace) or output.get("checksum") != expected
        ):
            job.checksum_mismatches += 1
            return Reply(412, {"message": "412 Precondition Failed"}, headers)
        job.status = "canceled" if job.status == "canceling" else state
        job.final = {k: v for k, v in body.items() if k not in ("token", "info")}
        job.final_updates += 1
        return Reply(200, {}, {"Job-Status": job.status})

    def _patch_trace(self, job_id: int, req: Request) -> Reply:
        job = self._job_for(job_id, req.headers.get("job-token"))
        if isinstance(job, Reply):
            return job
        if job.status not in ("running", "canceling"):
            return Reply(403, {"message": "403 Forbidden - Job is not running"})
        match = re.fullmatch(r"(\d+)-(\d+)", req.headers.get("content-range", ""))
        if match is None or int(match[2]) != int(match[1]) + len(req.body) - 1:
            return Reply(400, {"message": "400 Bad request - Content-Range"})
        start = int(match[1])
        headers = {"Job-Status": job.status}
        if self.trace_interval is not None:
            headers["X-GitLab-Trace-Update-Interval"] = f"{self.trace_interval:g}"
        if start > len(job.trace):
            job.range_mismatches += 1
            headers["Range"] = f"0-{len(job.trace)}"
            return Reply(416, {"message": "416 Range Not Satisfiable"}, headers)
        del job.trace[start:]
        job.trace += req.body
        job.patches.append((start, len(req.body)))
        headers["Range"] = f"0-{len(job.trace)}"
        return Reply(202, None, headers)

    def _upload_artifacts(self, job_id: int, req: Request) -> Reply:
        job = self._job_for(job_id, req.headers.get("job-token"))
        if isinstance(job, Reply):
            return job
        if self.max_artifact_size is not None and len(req.body) > self.max_artifact_size:
            return Reply(413, {"message": "413 Request Entity Too Large"})
        fields, files = parse_multipart(req.headers.get("content-type", ""), req.body)
        if "file" not in files:
            return Reply(400, {"message": "400 Bad request - file is missing"})
        filename, data = files["file"]
        job.artifacts.append(StoredArtifact(filename, data, fields))
        return Reply(201, {})

    def _download_artifacts(self, job_id: int, req: Request) -> Reply:
        token = req.headers.get("job-token", "")
        job = self.jobs.get(job_id)
        if job is None:
            return Reply(404, {"message": "404 Not Found"})
        allowed = {job.token} | {
            j.token
            for j in self.jobs.values()
            if any(d["id"] == job_id for d in j.payload["dependencies"])
        }
        if token not in allowed:
            return Reply(403, {"message": "403 Forbidden"})
        job.downloads.append((job_id, token))
        if not job.artifacts:
            return Reply(404, {"message": "404 Not Found"})
        return Reply(200, job.artifacts[-1].data, {"Content-Type": "application/zip"})


def parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """Split a multipart/form-data body into its fields and its files (name -> (filename, data))."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    assert match is not None, f"not multipart: {content_type!r}"
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in body.split(b"--" + match[1].encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        data = data.removesuffix(b"\r\n")
        disposition = next(
            (h for h in head.decode().split("\r\n") if h.lower().startswith("content-disposition")),
            "",
        )
        name = re.search(r'\bname="([^"]*)"', disposition)
        filename = re.search(r'\bfilename="([^"]*)"', disposition)
        if name is None:
            continue
        if filename is not None:
            files[name[1]] = (filename[1], data)
        else:
            fields[name[1]] = data.decode()
    return fields, files


@dataclass
class Request:
    """What the handler read: lower-case headers and the whole body."""

    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


@dataclass
class Reply:
    status: int
    body: Any = None  # JSON-able, bytes, or None for no body
    headers: dict[str, str] = field(default_factory=dict)


class _Handler(QuietHandler):
    fake: FakeCoordinator

    def _dispatch(self) -> None:
        path = self.path.split("?", 1)[0]
        body = self.read_body()
        route = None
        if path.startswith(API):
            rest = path[len(API) :]
            for method, pattern, endpoint in _ROUTES:
                match = pattern.fullmatch(rest)
                if method == self.command and match is not None:
                    route = (endpoint, match.groups())
                    break
        if route is None:
            self._send(Reply(404, {"message": "404 Not Found"}))
            return
        endpoint, ids = route
        fault = self.fake.take_fault(endpoint)
        if fault is not None and fault[0] != "lose_reply":
            self.fake.note(self.command, endpoint, fault[0])
            self._inject(*fault)
            return
        request = Request(self.lower_headers(), body)
        reply = self.fake.handle(endpoint, ids, request)
        if fault is not None:  # processed, but the answer never arrives
            self.fake.note(self.command, endpoint, "lose_reply")
            self._reset()
            return
        self.fake.note(self.command, endpoint, str(reply.status))
        self._send(reply)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _inject(self, kind: str, stall: float) -> None:
        if kind in ("500", "503"):
            self._send(Reply(int(kind), {"message": f"{kind} fault injected"}))
        elif kind == "bad_201":  # "created", with a body that is no job object
            self._send(Reply(201, b"[1, 2]", {"Content-Type": "application/json"}))
        elif kind == "stall":
            time.sleep(stall)
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            self._reset()

    def _reset(self) -> None:
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def _send(self, reply: Reply) -> None:
        if reply.body is None:
            data = b""
        elif isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = json.dumps(reply.body).encode()
            reply.headers.setdefault("Content-Type", "application/json")
        self.respond(reply.status, data, reply.headers)

    def finish(self) -> None:
        with contextlib.suppress(OSError):  # the connection was reset on purpose
            super().finish()
