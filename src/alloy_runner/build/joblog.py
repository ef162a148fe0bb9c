"""The job log: streamed as the job runs, masked, and cut at a size limit that it reports."""

from __future__ import annotations

from collections.abc import Callable, Sequence

MASK = b"[MASKED]"

Sink = Callable[[bytes], None]


def limit_message(limit: int) -> bytes:
    """Return the line written once when the log reaches its limit (GitLab Runner's words)."""
    return (
        f"\nJob's log exceeded limit of {limit} bytes.\n"
        "Job execution will continue but no more output will be collected.\n"
    ).encode()


class JobLog:
    """Mask secrets in the output of a job, enforce its size limit, and pass it to sinks.

    A secret can arrive split over two writes, so the last `len(longest) - 1`
    bytes are held back until more output (or `close`) shows they are not the
    start of a secret.
    """

    def __init__(
        self,
        masked: Sequence[str],
        limit: int,
        sinks: Sequence[Sink] = (),
        on_sink_error: Callable[[OSError], None] = lambda _exc: None,
    ) -> None:
        self._secrets = sorted({value.encode() for value in masked if value}, key=len, reverse=True)
        self._hold = max((len(secret) for secret in self._secrets), default=1) - 1
        self._pending = b""
        self._limit = limit
        self._sinks = list(sinks)
        self._on_sink_error = on_sink_error
        self.size = 0
        self.truncated = False
        self.closed = False

    def add_sink(self, sink: Sink) -> None:
        """Send everything written from now on to `sink` as well."""
        self._sinks.append(sink)

    def mask(self, data: bytes) -> bytes:
        """Return `data` with every secret replaced."""
        for secret in self._secrets:
            data = data.replace(secret, MASK)
        return data

    def write(self, data: bytes) -> None:
        """Add job output."""
        if self.closed or self.truncated or not data:
            return
        text = self.mask(self._pending + data)
        cut = max(len(text) - self._hold, 0)
        self._pending = text[cut:]
        self._emit(text[:cut])

    def write_line(self, line: str) -> None:
        """Add one line written by the runner itself (section headers, warnings)."""
        self.write(line.encode() + b"\n")

    def flush(self) -> None:
        """Emit the held-back tail (called at the end of each stage and at close)."""
        pending, self._pending = self._pending, b""
        self._emit(pending)

    def close(self) -> None:
        self.flush()
        self.closed = True

    def _emit(self, data: bytes) -> None:
        if not data or self.truncated:
            return
        room = self._limit - self.size
        if len(data) > room:
            data = data[: max(room, 0)] + limit_message(self._limit)
            self.truncated = True
        self.size += len(data)
        for sink in list(self._sinks):
            try:
                sink(data)
            except OSError as exc:  # a full disk, a closed pipe: that sink gets no more
                self._sinks.remove(sink)
                self._on_sink_error(exc)
