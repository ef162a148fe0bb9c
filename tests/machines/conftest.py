"""The container engine that docker+machine builds run on (a machine's engine is the test's)."""

from __future__ import annotations

import pytest

from tests.support.engine import engine_fixture

engine = pytest.fixture(scope="session", name="engine")(engine_fixture)
