"""Caches shared beyond one host: the distributed cache of `[runners.cache]`."""
