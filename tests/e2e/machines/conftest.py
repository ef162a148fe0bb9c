"""The container engine that docker+machine builds run on (a machine's engine is the test's)."""

from __future__ import annotations

import pytest

from tests.support.engine import engine_fixture, tcp_engine_fixture

engine = pytest.fixture(scope="session", name="engine")(engine_fixture)
# docker-machine machines are remote engines: the fake's `config NAME` names this one.
tcp_engine = pytest.fixture(scope="session", name="tcp_engine")(tcp_engine_fixture)
