"""Continuous profiling into Pyroscope, its push relay, and the /debug/pprof/ routes."""
