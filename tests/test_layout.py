"""The boundaries docs/design.md states, read from the imports of every module in src/."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "alloy_runner"
INSTRUMENTATION = ("opentelemetry", "prometheus_client", "pyroscope")
DOMAIN = ("build", "config", "coordinator", "executors", "machines", "pipeline", "helper")


def package_of(path: Path) -> str:
    """Return the top package of a module under src/alloy_runner ('' for top-level modules)."""
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else ""


@functools.cache
def imports(path: Path) -> frozenset[str]:
    """Return every module `path` imports, at any depth (lazy imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return frozenset(found)


MODULES = sorted(p for p in SRC.rglob("*.py") if not p.name.endswith("_pb2.py"))


def offending(allowed: tuple[str, ...], forbidden: tuple[str, ...]) -> list[str]:
    """Return `module: import` for each module outside `allowed` importing a forbidden name."""
    return [
        f"{path.relative_to(SRC)}: {name}"
        for path in MODULES
        if package_of(path) not in allowed
        for name in sorted(imports(path))
        if name.split(".")[0] in forbidden
    ]


def test_the_modules_are_found() -> None:
    """The checks below read every package of src/alloy_runner (a wrong path would pass them)."""
    assert {package_of(p) for p in MODULES} >= {*DOMAIN, "app", "cli", "telemetry"}


def test_only_telemetry_imports_opentelemetry_prometheus_client_or_pyroscope() -> None:
    """OpenTelemetry, prometheus_client and pyroscope are imported under telemetry/ only."""
    assert offending(("telemetry",), INSTRUMENTATION) == []


@pytest.mark.parametrize(
    "package", ["alloy_runner.telemetry", "alloy_runner.app", "alloy_runner.cli"]
)
def test_domain_packages_import_no_telemetry_app_or_cli(package: str) -> None:
    """Domain code gets telemetry through its own Protocols: it imports no telemetry, app or cli."""
    domain_modules = [p for p in MODULES if package_of(p) in DOMAIN]
    found = [
        f"{path.relative_to(SRC)}: {name}"
        for path in domain_modules
        for name in imports(path)
        if name == package or name.startswith(package + ".")
    ]
    assert found == []


def test_telemetry_imports_no_app_or_cli() -> None:
    """Telemetry implements the domain's Protocols and reads its state; it never wires or parses."""
    found = [
        f"{path.relative_to(SRC)}: {name}"
        for path in MODULES
        if package_of(path) == "telemetry"
        for name in imports(path)
        if name.startswith(("alloy_runner.app", "alloy_runner.cli"))
    ]
    assert found == []
