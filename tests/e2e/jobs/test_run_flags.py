"""`run --user`, `--working-directory` and `--service`, on a real runner process."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import JobsRig, pipeline


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="alloy-user-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="running jobs as another user needs root")
def test_user_runs_shell_jobs_as_that_user(tmp_path: Path, open_dir: Path) -> None:
    nobody = pwd.getpwnam("nobody")
    rig = JobsRig(tmp_path)
    try:
        config = rig.config(concurrent=1, builds=open_dir / "builds")
        rig.runner(config, args=("--user", "nobody"), env={"TMPDIR": str(open_dir)})
        (open_dir / "builds").mkdir(exist_ok=True)
        project = rig.project(
            "as-nobody",
            pipeline(
                only={
                    "script": ['id -un > whoami; echo "$HOME" >> whoami; touch made'],
                    "cache": {"key": "k", "paths": ["made"]},
                }
            ),
        )
        job = rig.submit(project).jobs["only"]
        assert rig.wait_results([job])[job]["status"] == "success", rig.trace(job)
    finally:
        rig.stop_all()
    whoami = next((open_dir / "builds").rglob("whoami"))
    assert whoami.read_text().split() == ["nobody", nobody.pw_dir]
    assert whoami.stat().st_uid == nobody.pw_uid
    assert (whoami.parent / "made").stat().st_uid == nobody.pw_uid


def test_working_directory_holds_the_default_builds_and_cache(tmp_path: Path) -> None:
    rig = JobsRig(tmp_path / "rig")
    work = tmp_path / "work"
    work.mkdir()
    config = f'concurrent = 1\nspool_dir = "{rig.spool}"\n\n[[runners]]\nname = "wd"\n'
    config += f'environment = ["OUT={rig.out}"]\n'
    try:
        runner = rig.runner(config, args=("--working-directory", str(work), "--service", "ci-a"))
        assert "service=ci-a" in runner.wait_for_line(r"started: ").string
        project = rig.project("in-wd", pipeline(only={"script": ['pwd > "$OUT/pwd"']}))
        job = rig.submit(project).jobs["only"]
        assert rig.wait_results([job])[job]["status"] == "success", rig.trace(job)
    finally:
        rig.stop_all()
    assert Path((rig.out / "pwd").read_text().strip()).is_relative_to(work / "builds")
