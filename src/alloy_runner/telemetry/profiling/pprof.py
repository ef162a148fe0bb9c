"""Build pprof `Profile` messages (google/pprof's profile.proto) from Python stacks."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import FrameType

from alloy_runner.telemetry.profiling.proto import profile_pb2

MAX_DEPTH = 128  # frames kept per stack, from the innermost; deeper callers are cut


@dataclass(frozen=True)
class Frame:
    """One Python frame as a profile sees it."""

    function: str
    filename: str
    first_line: int
    line: int


Stack = tuple[Frame, ...]  # innermost first, as pprof's Sample.location_id


def frame_of(frame: FrameType) -> Frame:
    """Describe a live frame (its qualified function name, file and current line)."""
    code = frame.f_code
    return Frame(code.co_qualname, code.co_filename, code.co_firstlineno, frame.f_lineno or 0)


def stack_of(frame: FrameType | None, limit: int = MAX_DEPTH) -> Stack:
    """Return the stack of `frame` and its callers, innermost first, at most `limit` frames."""
    frames: list[Frame] = []
    while frame is not None and len(frames) < limit:
        frames.append(frame_of(frame))
        frame = frame.f_back
    return tuple(frames)


class ProfileBuilder:
    """Accumulate samples of (stack, labels) and encode them as one pprof Profile.

    Functions, locations and strings are interned, so a stack seen a thousand
    times costs its frames once.
    """

    def __init__(
        self,
        sample_types: Sequence[tuple[str, str]],
        period_type: tuple[str, str],
        period: int,
        *,
        started_ns: int | None = None,
    ) -> None:
        self._profile = profile_pb2.Profile()
        self._strings: dict[str, int] = {}
        self._functions: dict[tuple[str, str, int], int] = {}
        self._locations: dict[Frame, int] = {}
        self._samples: dict[tuple[Stack, tuple[tuple[str, str], ...]], list[int]] = {}
        self._width = len(sample_types)
        self._string("")  # string_table[0] is "" by the format's rule
        for kind, unit in sample_types:
            self._profile.sample_type.add(type=self._string(kind), unit=self._string(unit))
        self._profile.period_type.type = self._string(period_type[0])
        self._profile.period_type.unit = self._string(period_type[1])
        self._profile.period = period
        self._started_ns = started_ns if started_ns is not None else time.time_ns()

    def _string(self, text: str) -> int:
        index = self._strings.get(text)
        if index is None:
            index = self._strings[text] = len(self._profile.string_table)
            self._profile.string_table.append(text)
        return index

    def _function(self, frame: Frame) -> int:
        key = (frame.function, frame.filename, frame.first_line)
        fid = self._functions.get(key)
        if fid is None:
            fid = self._functions[key] = len(self._functions) + 1
            name = self._string(frame.function)
            self._profile.function.add(
                id=fid,
                name=name,
                system_name=name,
                filename=self._string(frame.filename),
                start_line=frame.first_line,
            )
        return fid

    def _location(self, frame: Frame) -> int:
        lid = self._locations.get(frame)
        if lid is None:
            lid = self._locations[frame] = len(self._locations) + 1
            location = self._profile.location.add(id=lid)
            location.line.add(function_id=self._function(frame), line=frame.line)
        return lid

    def add(
        self, stack: Stack, values: Sequence[int], labels: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Add `values` (one per sample type) to the sample of `stack` with `labels`."""
        if len(values) != self._width:
            raise ValueError(f"{len(values)} values for {self._width} sample types")
        key = (stack, tuple(labels))
        total = self._samples.get(key)
        if total is None:
            self._samples[key] = list(values)
        else:
            for i, value in enumerate(values):
                total[i] += value

    def comment(self, text: str) -> None:
        """Add a comment that `pprof -comments` shows."""
        self._profile.comment.append(self._string(text))

    def build(self, duration_ns: int | None = None) -> profile_pb2.Profile:
        """Return the Profile message holding every sample added so far."""
        profile = self._profile
        del profile.sample[:]
        for (stack, labels), values in self._samples.items():
            sample = profile.sample.add(
                location_id=[self._location(f) for f in stack], value=values
            )
            for key, value in labels:
                sample.label.add(key=self._string(key), str=self._string(value))
        profile.time_nanos = self._started_ns
        profile.duration_nanos = (
            duration_ns if duration_ns is not None else time.time_ns() - self._started_ns
        )
        return profile

    def encode(self, duration_ns: int | None = None) -> bytes:
        """Return the gzipped Profile, as `go tool pprof` and Go's /debug/pprof serve it."""
        return gzip.compress(self.build(duration_ns).SerializeToString(), compresslevel=6)
