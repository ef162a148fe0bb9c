"""config.toml, flags and environment into one validated, frozen `Config`."""
