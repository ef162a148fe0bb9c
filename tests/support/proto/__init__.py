"""Code generated from the push API schema for the tests' Pyroscope receiver (generate.sh)."""
