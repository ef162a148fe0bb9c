"""`release_free_memory`: freed heap pages go back to the operating system."""

from __future__ import annotations

import ctypes

import pytest

from alloy_runner import memory
from tests.support.procfs import vm_rss_bytes


def test_free_pages_inside_the_heap_go_back_to_the_system() -> None:
    """Freed chunks between live ones stay resident until the trim, and leave with it."""
    blocks = [bytes(2048) for _ in range(20_000)]  # ~40 MB from malloc (not pymalloc: > 512 B)
    kept = blocks[::10]  # one live chunk in ten: the heap cannot shrink from its top
    del blocks
    before = vm_rss_bytes()
    assert memory.release_free_memory()
    after = vm_rss_bytes()
    assert before - after > 20 * 1024 * 1024, (before, after)
    assert len(kept) == 2000


def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A C library without malloc_trim (musl) makes it a no-op that says so."""

    class NoTrim:
        def __init__(self, name: object) -> None:
            pass

        def __getattr__(self, name: str) -> object:
            raise AttributeError(name)

    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(ctypes, "CDLL", NoTrim)
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()
