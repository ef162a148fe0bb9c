"""A build: one job run through its stages on an executor."""
