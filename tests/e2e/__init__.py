"""End-to-end tests: the real process, real servers, real tools."""
