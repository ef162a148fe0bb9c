"""The `run` process: wiring in dependency order, the daemon's lifecycle and signals, reload."""
