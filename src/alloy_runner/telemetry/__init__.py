"""Everything that knows OpenTelemetry, Prometheus and Pyroscope.

Domain packages never import from here; the daemon wires it in.
"""
