"""The runner's own log: one line a record, whatever a value holds."""

from __future__ import annotations

import logging

from alloy_runner.app.logs import TextFormatter, escape_controls


def test_control_characters_in_a_value_cannot_forge_a_line() -> None:
    """A job or runner name with a newline is escaped, so the record stays one line."""
    record = logging.LogRecord(
        "alloy_runner",
        logging.INFO,
        __file__,
        1,
        "job %s finished",
        ("x\n2026 ERROR forged",),
        None,
    )
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert line.endswith("INFO    job x\\n2026 ERROR forged finished")


def test_escape_controls_keeps_printable_text() -> None:
    """Printable text, Unicode included, is left as it is; NUL, ESC and CR are escaped."""
    assert escape_controls("héllo wörld") == "héllo wörld"
    assert escape_controls("a\x00b\x1bc\rd\te") == "a\\x00b\\x1bc\\rd\\te"
