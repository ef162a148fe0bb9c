"""The MeterProvider and its readers, and the adapters behind the domain's metric Protocols."""
