"""`log_format`: "json" writes one JSON object per line (GitLab's keys and the record's fields);
"runner", GitLab Runner's default, is the text format."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from tests.support.jobs import JobsRig, pipeline


def test_every_line_of_a_json_logging_runner_parses(tmp_path: Path) -> None:
    rig = JobsRig(tmp_path)
    try:
        # A warned key and a job, so that warnings and job lines are logged too.
        config = 'log_format = "json"\nlog_level = "debug"\nconnection_max_age = "15m"\n'
        runner = rig.runner(config + rig.config(concurrent=1))
        project = rig.project("logged", pipeline(only={"script": ["true"]}))
        job = rig.submit(project).jobs["only"]
        assert rig.wait_results([job])[job]["status"] == "success"
        runner.wait_for_line(r'"msg": "job \d+ \(only\) finished')
        runner.signal(signal.SIGTERM)
        assert runner.wait(20) == 0
    finally:
        rig.stop_all()
    lines = runner.stderr_lines
    assert len(lines) >= 5
    entries = [json.loads(line) for line in lines]  # every line, or this raises
    for entry in entries:
        assert {"time", "level", "msg"} <= entry.keys(), entry
        assert entry["level"] in ("debug", "info", "warning", "error", "fatal")
    assert any(e["level"] == "warning" and "connection_max_age" in e["msg"] for e in entries)
    finished = next(e for e in entries if " finished: " in e["msg"])
    assert (finished["job"], finished["runner"], finished["state"]) == (job, "jobs", "success")


def test_log_format_runner_writes_text_lines(tmp_path: Path) -> None:
    rig = JobsRig(tmp_path)
    try:
        runner = rig.runner('log_format = "runner"\n' + rig.config(concurrent=1))
    finally:
        rig.stop_all()
    assert runner.stderr_lines and not runner.stderr_lines[0].startswith("{")
