"""Machine drivers: `local` (directories on this host), `docker-machine` (the CLI), `memory`."""
