"""Tests of the deployment files: compose, collector, Prometheus rules, Grafana."""
