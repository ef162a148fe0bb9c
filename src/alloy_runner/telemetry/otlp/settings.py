"""The OTEL_* variables of the SDK configuration specification, read and checked once at start.

Every value that cannot work raises `ConfigError` with the variable's name, so
the process stops with one line and exit status 2 instead of a traceback (or,
worse, of a setting the SDK would silently ignore). Booleans follow the
specification: only "true" (any case) is true, and a value other than true,
false or empty is warned about and read as false.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alloy_runner.exceptions import ConfigError

if TYPE_CHECKING:
    from opentelemetry.propagators.textmap import TextMapPropagator

log = logging.getLogger(__name__)

SDK_DISABLED = "OTEL_SDK_DISABLED"
PROPAGATORS = "OTEL_PROPAGATORS"
EXEMPLAR_FILTER = "OTEL_METRICS_EXEMPLAR_FILTER"
EXPORT_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
EXPORT_TIMEOUT = "OTEL_METRIC_EXPORT_TIMEOUT"

GRPC = "grpc"
HTTP_PROTOBUF = "http/protobuf"
HTTP_JSON = "http/json"
DEFAULT_ENDPOINTS = {GRPC: "http://localhost:4317", HTTP_PROTOBUF: "http://localhost:4318"}

# The exporter names OTEL_{METRICS,TRACES}_EXPORTER may list here. "prometheus" is the
# spec's pull exporter: this process always serves /metrics, so naming it changes nothing.
EXPORTERS = {
    "metrics": ("otlp", "console", "prometheus", "none"),
    "traces": ("otlp", "console", "none"),
}
EXEMPLAR_FILTERS = ("trace_based", "always_on", "always_off")
COMPRESSIONS = {GRPC: ("gzip", "none"), HTTP_PROTOBUF: ("gzip", "deflate", "none")}
PROPAGATOR_GROUP = "opentelemetry_propagator"


def flag(env: Mapping[str, str], name: str) -> bool:
    """Read a boolean variable as the specification says: only "true" (any case) is true."""
    value = env.get(name, "").strip().lower()
    if value not in ("", "true", "false"):
        log.warning("%s=%r is not true or false; read as false", name, env[name])
    return value == "true"


def sdk_disabled(env: Mapping[str, str]) -> bool:
    """Tell whether OTEL_SDK_DISABLED turns the SDK's push and spans off."""
    return flag(env, SDK_DISABLED)


def exporters(env: Mapping[str, str], signal: str) -> tuple[str, ...] | None:
    """Return the exporters OTEL_{SIGNAL}_EXPORTER lists (empty: none); None when it is unset."""
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    text = env.get(variable, "").strip()
    if not text:
        return None
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    known = EXPORTERS[signal]
    for name in names:
        if name not in known:
            raise ConfigError(
                f"{variable}: unknown exporter {name!r} (this runner has {', '.join(known)})"
            )
    if "none" in names and len(names) > 1:
        raise ConfigError(f"{variable}: 'none' cannot be listed with other exporters")
    return tuple(n for n in names if n not in ("none", "prometheus"))


def protocol(env: Mapping[str, str], signal: str) -> str:
    """Return the OTLP protocol of `signal`: its own variable, then the shared one."""
    own = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    for variable in (own, "OTEL_EXPORTER_OTLP_PROTOCOL"):
        value = env.get(variable, "").strip().lower()
        if not value:
            continue
        if value == HTTP_JSON:
            raise ConfigError(
                f"{variable}: http/json is not supported (the Python SDK has no JSON "
                "exporter); use http/protobuf or grpc"
            )
        if value not in (GRPC, HTTP_PROTOBUF):
            raise ConfigError(f"{variable}: expected grpc or http/protobuf, got {value!r}")
        return value
    return HTTP_PROTOBUF


def signal_value(env: Mapping[str, str], signal: str, suffix: str) -> tuple[str, str] | None:
    """Return (variable, value) of OTEL_EXPORTER_OTLP_{SIGNAL}_{suffix}, else of the shared one."""
    for variable in (
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_{suffix}",
        f"OTEL_EXPORTER_OTLP_{suffix}",
    ):
        value = env.get(variable, "").strip()
        if value:
            return variable, value
    return None


def milliseconds(env: Mapping[str, str], variable: str) -> float | None:
    """Read a duration in milliseconds (the specification's unit) as seconds; None: unset."""
    text = env.get(variable, "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{variable}: expected milliseconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ConfigError(f"{variable}: expected a non-negative number of milliseconds")
    return value / 1000


def signal_timeout(env: Mapping[str, str], signal: str) -> float | None:
    """Return OTEL_EXPORTER_OTLP[_SIGNAL]_TIMEOUT in seconds; None: unset."""
    found = signal_value(env, signal, "TIMEOUT")
    return milliseconds({found[0]: found[1]}, found[0]) if found else None


def compression(env: Mapping[str, str], signal: str, proto: str) -> str | None:
    """Return the checked OTEL_EXPORTER_OTLP[_SIGNAL]_COMPRESSION; None: unset."""
    found = signal_value(env, signal, "COMPRESSION")
    if found is None:
        return None
    variable, value = found
    if value.lower() not in COMPRESSIONS[proto]:
        raise ConfigError(
            f"{variable}: expected {' or '.join(COMPRESSIONS[proto])} for {proto}, got {value!r}"
        )
    return value.lower()


@dataclass(frozen=True)
class Tls:
    """The files that secure one signal's connection; None where unset."""

    certificate: str | None = None  # the CA bundle that verifies the collector
    client_certificate: str | None = None
    client_key: str | None = None
    insecure: bool = False  # gRPC only: no TLS for an endpoint without a scheme


def tls(env: Mapping[str, str], signal: str) -> Tls:
    """Read and check the TLS variables of `signal`: each file must load as what it is."""
    paths: dict[str, tuple[str, str] | None] = {
        suffix: signal_value(env, signal, suffix)
        for suffix in ("CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY")
    }
    for found in paths.values():
        if found is not None and not Path(found[1]).is_file():
            raise ConfigError(f"{found[0]}: {found[1]}: no such file")
    ca, cert, key = paths["CERTIFICATE"], paths["CLIENT_CERTIFICATE"], paths["CLIENT_KEY"]
    context = ssl.create_default_context(cafile=None)
    if ca is not None:
        try:
            context.load_verify_locations(cafile=ca[1])
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"{ca[0]}: {ca[1]}: not a PEM certificate: {exc}") from None
    if (cert is None) != (key is None):
        given = cert or key
        assert given is not None
        raise ConfigError(
            f"{given[0]}: the client certificate and the client key go together; set both"
        )
    if cert is not None and key is not None:
        try:
            context.load_cert_chain(cert[1], key[1])
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"{cert[0]}/{key[0]}: cannot load the client certificate and key: {exc}"
            ) from None
    insecure = signal_value(env, signal, "INSECURE")
    return Tls(
        ca[1] if ca else None,
        cert[1] if cert else None,
        key[1] if key else None,
        flag({insecure[0]: insecure[1]}, insecure[0]) if insecure else False,
    )


def exemplar_filter(env: Mapping[str, str]) -> str:
    """Return the checked OTEL_METRICS_EXEMPLAR_FILTER (default trace_based)."""
    value = env.get(EXEMPLAR_FILTER, "").strip().lower() or "trace_based"
    if value not in EXEMPLAR_FILTERS:
        raise ConfigError(
            f"{EXEMPLAR_FILTER}: expected {', '.join(EXEMPLAR_FILTERS)}, got {value!r}"
        )
    return value


# What opentelemetry-api itself registers under PROPAGATOR_GROUP (it is always installed).
API_PROPAGATORS = frozenset({"tracecontext", "baggage"})


def propagator_names(env: Mapping[str, str]) -> tuple[str, ...]:
    """Return the OTEL_PROPAGATORS names, each installed; () for none."""
    text = env.get(PROPAGATORS, "").strip() or "tracecontext,baggage"
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    if "none" in names:
        if len(names) > 1:
            raise ConfigError(f"{PROPAGATORS}: 'none' cannot be listed with other propagators")
        return ()
    if set(names) <= API_PROPAGATORS:
        return names  # no look through every installed package's entry points
    from importlib.metadata import entry_points  # ~1 MB of imports: only when needed

    installed = sorted(e.name for e in entry_points(group=PROPAGATOR_GROUP))
    for name in names:
        if name not in installed:
            raise ConfigError(
                f"{PROPAGATORS}: unknown propagator {name!r} (installed: {', '.join(installed)})"
            )
    return names


def load_propagator(names: tuple[str, ...]) -> TextMapPropagator:
    """Return one propagator doing what each of `names` does, in their order."""
    from importlib.metadata import entry_points

    from opentelemetry.propagators.composite import CompositePropagator

    loaded = []
    for name in names:
        (point,) = entry_points(group=PROPAGATOR_GROUP, name=name)
        loaded.append(point.load()())
    return CompositePropagator(loaded)
