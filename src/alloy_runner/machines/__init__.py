"""Autoscaled build machines: the pool (IdleCount, IdleTime, MaxBuilds), its provider, drivers."""
