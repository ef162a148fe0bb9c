"""Tests of `alloy_runner.telemetry`."""
