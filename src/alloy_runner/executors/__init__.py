"""Executors: where a build's stage scripts run."""
