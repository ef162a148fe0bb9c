"""The local spool directory: the embedded default coordinator (store) and its job source."""
