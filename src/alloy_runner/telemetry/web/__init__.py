"""The HTTP server for /metrics, /debug/..., /-/healthy and /-/ready, with its web config."""
