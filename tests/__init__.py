"""alloy-runner's test suite; `tests.support` holds the helpers every test module shares."""
