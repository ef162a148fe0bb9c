"""JobLog, the job log: masking, also of a secret split over writes, and the size limit."""

from __future__ import annotations

from alloy_runner.build.joblog import MASK, JobLog, limit_message


def sent(trace: JobLog) -> tuple[JobLog, bytearray]:
    out = bytearray()
    trace.add_sink(out.extend)
    return trace, out


def test_secrets_are_masked_even_when_split_over_two_writes() -> None:
    """A secret written in two pieces reaches no sink; [MASKED] takes its place."""
    trace, out = sent(JobLog(["s3cr3t-value"], limit=1024))
    trace.write(b"token=s3cr3")
    trace.write(b"t-value done\n")
    trace.close()
    assert bytes(out) == b"token=" + MASK + b" done\n"


def test_the_longest_secret_wins_where_secrets_overlap() -> None:
    """Where one secret contains another, the whole longer one is masked."""
    trace, out = sent(JobLog(["abc", "abcdef"], limit=1024))
    trace.write_line("x abcdef y abc")
    trace.close()
    assert bytes(out) == b"x " + MASK + b" y " + MASK + b"\n"


def test_held_back_bytes_are_emitted_at_flush() -> None:
    """Bytes held back as a possible secret's start are sent at the end of a stage."""
    trace, out = sent(JobLog(["secret"], limit=1024))
    trace.write(b"sec")
    assert bytes(out) == b""
    trace.flush()
    assert bytes(out) == b"sec"


def test_the_log_is_cut_at_its_limit_with_one_message() -> None:
    """Past the limit the log ends with GitLab Runner's message, once; later writes are dropped."""
    trace, out = sent(JobLog([], limit=10))
    trace.write(b"0123456789abcdef")
    trace.write(b"more")
    trace.close()
    assert bytes(out) == b"0123456789" + limit_message(10)
    assert trace.truncated
    assert bytes(out).count(b"exceeded limit") == 1


def test_nothing_is_written_after_close() -> None:
    """A closed log takes no more output."""
    trace, out = sent(JobLog([], limit=1024))
    trace.write_line("last")
    trace.close()
    trace.write(b"late")
    assert bytes(out) == b"last\n"


def test_a_secret_whose_first_piece_is_shorter_than_the_hold_is_masked() -> None:
    """A first write shorter than a secret is held whole, so the secret cannot leak in pieces."""
    trace, out = sent(JobLog(["secret"], limit=1024))
    trace.write(b"sec")
    trace.write(b"ret\n")
    trace.close()
    assert bytes(out) == MASK + b"\n"
