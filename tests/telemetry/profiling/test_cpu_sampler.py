"""The in-process CPU profiler, the pprof builder and the thread/task dump, in this process."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from alloy_runner.telemetry.profiling import cpu_sampler as cpu_profile
from alloy_runner.telemetry.profiling.cpu_sampler import CpuProfiler, schedstat_cpu_ns
from alloy_runner.telemetry.profiling.pprof import Frame, ProfileBuilder
from alloy_runner.telemetry.profiling.proto import profile_pb2
from alloy_runner.telemetry.profiling.stacks import dump_profile, dump_text, task_stacks
from tests.support.pyroscope import function_weights, sample_labels


def spin_in_known_function(stop: threading.Event) -> None:
    """Burn CPU until told to stop (the function a profile must find)."""
    x = 0
    while not stop.is_set():
        for i in range(10_000):
            x += i * i


def wait_in_known_function(stop: threading.Event) -> None:
    """Wait without using CPU (a function a CPU profile must not show)."""
    stop.wait()


@pytest.fixture
def threads() -> Iterator[threading.Event]:
    """A busy and an idle thread with known names, stopped at teardown."""
    stop = threading.Event()
    workers = [
        threading.Thread(target=spin_in_known_function, args=(stop,), name="busy-worker"),
        threading.Thread(target=wait_in_known_function, args=(stop,), name="idle-worker"),
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.1)  # past their start-up, which uses CPU in any function
    yield stop
    stop.set()
    for worker in workers:
        worker.join(5)


def _decode(body: bytes) -> profile_pb2.Profile:
    profile: profile_pb2.Profile = profile_pb2.Profile.FromString(gzip.decompress(body))
    return profile


def test_cpu_profile_shows_busy_not_idle_threads(
    threads: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 1 s profile holds the spinning function in nearly every tick, and the waiting one in
    none; the CPU time it records is, in nanoseconds, what the process used meanwhile."""
    asked: Counter[int | None] = Counter()

    def counted_cpu_ns(native_id: int) -> int | None:
        asked[native_id] += 1
        return schedstat_cpu_ns(native_id)

    monkeypatch.setattr(cpu_profile, "schedstat_cpu_ns", counted_cpu_ns)
    idle = next(t.native_id for t in threading.enumerate() if t.name == "idle-worker")
    profiler = CpuProfiler()
    assert profiler.try_begin()
    used_before = time.process_time_ns()
    profile = _decode(profiler.profile(1.0))
    used = time.process_time_ns() - used_before
    # Ticks, not seconds, are the measure: the sampler asks for 100 a second, but waits for
    # the GIL each time and, on a loaded machine, for a core.
    ticks = asked[idle]
    assert ticks >= 10
    weights = function_weights(profile)
    assert weights["spin_in_known_function"] >= ticks // 2
    assert weights["wait_in_known_function"] <= 2  # a wake-up may cost a tick
    labels = sample_labels(profile)
    assert ("thread", "busy-worker") in labels
    cpu = sum(s.value[1] for s in profile.sample)
    # Not counted: the sampler's own CPU, and the busy thread's before the first tick and
    # after the last. A running thread's schedstat may lag by a kernel tick.
    assert 0.5 * used < cpu < used + 20_000_000, (cpu, used)


def test_wall_clock_fallback_without_proc(
    threads: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without per-thread CPU times every sampled stack counts once per tick, idle ones too,
    and a comment in the profile says it is a wall-clock profile."""
    monkeypatch.setattr(
        "alloy_runner.telemetry.profiling.cpu_sampler.proc_available", lambda: False
    )
    profiler = CpuProfiler()
    assert profiler.try_begin()
    profile = _decode(profiler.profile(0.3))
    assert function_weights(profile)["wait_in_known_function"] >= 10
    comments = [profile.string_table[c] for c in profile.comment]
    assert any("wall-clock" in c for c in comments)


def test_a_thread_whose_cpu_time_is_unknown_is_skipped(threads: threading.Event) -> None:
    """A thread whose CPU time cannot be read (it just ended) adds no sample."""
    profiler = CpuProfiler(cpu_clock=lambda _tid: None)
    assert profiler.try_begin()
    assert len(_decode(profiler.profile(0.2)).sample) == 0


def test_one_profile_at_a_time() -> None:
    """A second `try_begin` fails until the running profile has returned."""
    profiler = CpuProfiler()
    assert profiler.try_begin()
    assert not profiler.try_begin()
    profiler.profile(0.05)
    assert profiler.try_begin()
    profiler.profile(0.01)


def test_close_ends_a_running_profile_early() -> None:
    """`close` makes a profile being taken return at once with what it has."""
    profiler = CpuProfiler()
    assert profiler.try_begin()
    result: list[bytes] = []
    taker = threading.Thread(target=lambda: result.append(profiler.profile(30.0)))
    taker.start()
    time.sleep(0.2)
    began = time.monotonic()
    profiler.close()
    taker.join(5)
    assert time.monotonic() - began < 1.0
    assert _decode(result[0]).duration_nanos < 5e9


def test_builder_interns_and_sums() -> None:
    """Equal stacks and labels add up into one sample; strings and functions are stored once."""
    outer = Frame("outer", "m.py", 1, 5)
    inner = Frame("inner", "m.py", 10, 12)
    builder = ProfileBuilder([("samples", "count")], ("cpu", "nanoseconds"), 10)
    builder.add((inner, outer), (1,))
    builder.add((inner, outer), (2,))
    builder.add((outer,), (1,), (("thread", "t"),))
    profile = builder.build(5)
    assert profile.string_table[0] == ""
    assert len(profile.string_table) == len(set(profile.string_table))
    assert sorted(s.value[0] for s in profile.sample) == [1, 3]
    assert len(profile.function) == 2 and len(profile.location) == 2
    with pytest.raises(ValueError, match="1 sample types"):
        builder.add((outer,), (1, 2))


def test_dump_names_threads_and_tasks_of_a_running_loop() -> None:
    """The text dump read from another thread lists a loop's threads and its named tasks,
    with the coroutine the task waits in."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    done = asyncio.Event()

    async def parked_in_known_coroutine() -> None:
        await asyncio.sleep(60)

    async def main() -> None:
        parked = asyncio.create_task(parked_in_known_coroutine(), name="parked-task")
        ready.set()
        await done.wait()
        parked.cancel()

    runner = threading.Thread(
        target=lambda: loop.run_until_complete(main()), name="loop-thread", daemon=True
    )
    runner.start()
    try:
        assert ready.wait(5)
        time.sleep(0.05)
        text = dump_text(loop)
        assert 'thread "loop-thread"' in text
        assert 'task "parked-task" [pending]:' in text
        assert "in test_dump_names_threads_and_tasks_of_a_running_loop.<locals>." in text
        assert "awaiting <Future pending" in text
        names = {t.name for t in task_stacks(loop)}
        assert "parked-task" in names
        profile = _decode(dump_profile(loop))
        assert ("task", "parked-task") in sample_labels(profile)
    finally:
        loop.call_soon_threadsafe(done.set)
        runner.join(5)
        loop.close()
    assert task_stacks(loop) == []  # a closed loop has no tasks to show
