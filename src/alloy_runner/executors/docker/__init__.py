"""The docker executor: a build's scripts run in containers of its image on a Docker engine."""
