"""`python -m alloy_runner.helper` as executors run it: a real process, its exits and output."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.support.archives import make_tree, names


def run_helper(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the helper as the executor does: a real process in the project directory."""
    return subprocess.run(
        [sys.executable, "-m", "alloy_runner.helper", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def git(cwd: Path, *args: str) -> None:
    """Run git in a test repository, with an identity of its own."""
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project directory, with room beside it for things outside the project."""
    root = tmp_path / "project"
    root.mkdir()
    return root


def test_round_trip_keeps_content_directories_modes_and_symlinks(
    project: Path, tmp_path: Path
) -> None:
    """archive then extract reproduces content, empty dirs, executable bits and symlinks."""
    make_tree(project, {"bin/run.sh": "#!/bin/sh\necho hi\n", "lib/a/b.txt": "deep", "top": "t"})
    (project / "bin/run.sh").chmod(0o755)
    (project / "lib/ro.txt").write_text("read only")
    (project / "lib/ro.txt").chmod(0o444)
    (project / "empty").mkdir()
    (project / "private").mkdir(mode=0o700)
    (project / "bin/link").symlink_to("run.sh")
    (project / "lib/dirlink").symlink_to("a", target_is_directory=True)

    paths = ["bin", "lib", "empty", "top", "private"]
    done = run_helper(project, "archive", "--file", "out.zip", *(f"--path={p}" for p in paths))
    assert done.returncode == 0, done.stderr
    assert "bin: found 3 matching artifact files and directories" in done.stdout
    assert "out.zip: created archive with" in done.stdout.splitlines()[-1]

    dest = tmp_path / "dest"
    dest.mkdir()
    done = run_helper(dest, "extract", "--file", str(project / "out.zip"))
    assert done.returncode == 0, done.stderr
    assert (dest / "bin/run.sh").read_text() == "#!/bin/sh\necho hi\n"
    assert stat.S_IMODE((dest / "bin/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((dest / "lib/ro.txt").stat().st_mode) == 0o444
    assert (dest / "lib/a/b.txt").read_text() == "deep"
    assert (dest / "top").read_text() == "t"
    assert (dest / "empty").is_dir()
    assert stat.S_IMODE((dest / "private").stat().st_mode) == 0o700
    assert os.readlink(dest / "bin/link") == "run.sh"
    assert os.readlink(dest / "lib/dirlink") == "a"
    assert (dest / "lib/dirlink/b.txt").read_text() == "deep"
    assert (dest / "top").stat().st_mtime == pytest.approx((project / "top").stat().st_mtime, abs=2)


def test_exclude_removes_matches_and_is_not_recursive(project: Path) -> None:
    """`--exclude` drops what it matches; like GitLab it does not recurse into a matched dir."""
    make_tree(project, {"src/a.c": "", "src/a.o": "", "src/sub/b.o": "", "src/cache/x": ""})
    args = ["--path=src", "--exclude=src/**/*.o", "--exclude=src/cache"]
    done = run_helper(project, "archive", "--file", "out.zip", *args)
    assert done.returncode == 0, done.stderr
    assert names(project / "out.zip") == {"src/", "src/a.c", "src/sub/", "src/cache/x"}
    assert "src/**/*.o: excluded 2 files and directories" in done.stdout


def test_untracked_adds_files_git_neither_tracks_nor_ignores(project: Path) -> None:
    """`--untracked` archives `git ls-files --others --exclude-standard`, not tracked or ignored."""
    git(project, "init", "-q")
    git(project, "config", "user.name", "Test")
    git(project, "config", "user.email", "test@example.com")
    make_tree(project, {"tracked.txt": "t", ".gitignore": "*.log\n"})
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "init")
    make_tree(project, {"new.txt": "n", "dir/new2.txt": "n", "debug.log": "ignored"})
    done = run_helper(project, "archive", "--file", "out.zip", "--untracked")
    assert done.returncode == 0, done.stderr
    assert "untracked: found 2 files" in done.stdout
    assert names(project / "out.zip") == {"new.txt", "dir/new2.txt"}


def test_untracked_outside_a_git_work_tree_is_ignored_with_a_message(project: Path) -> None:
    """Without a git work tree `--untracked` adds nothing and says why; other paths still count."""
    make_tree(project, {"a.txt": "a"})
    done = run_helper(project, "archive", "--file", "out.zip", "--untracked", "--path", "a.txt")
    assert done.returncode == 0, done.stderr
    assert "WARNING: untracked: not a git work tree, ignored" in done.stdout
    assert names(project / "out.zip") == {"a.txt"}


def test_paths_and_symlinks_outside_the_project_are_skipped_with_a_warning(
    project: Path, tmp_path: Path
) -> None:
    """`..`, absolute outside paths, links out and paths through links out: a warning each."""
    outside = tmp_path / "outside"
    make_tree(outside, {"secret": "s"})
    make_tree(project, {"ok.txt": "ok"})
    (project / "out-link").symlink_to(outside / "secret")
    (project / "out-dir").symlink_to(outside, target_is_directory=True)
    paths = ["ok.txt", "../outside/secret", str(outside / "secret"), "out-link", "out-dir/secret"]
    done = run_helper(project, "archive", "--file", "a.zip", *(f"--path={p}" for p in paths))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    not_subpath = f"artifact path is not a subpath of project directory: {project}"
    assert f"WARNING: ../outside/secret: {not_subpath}" in lines
    assert f"WARNING: {outside / 'secret'}: {not_subpath}" in lines
    assert f"WARNING: out-dir/secret: {not_subpath}" in lines
    assert "WARNING: out-link: symlink points outside the project directory, skipped" in lines
    assert names(project / "a.zip") == {"ok.txt"}


@pytest.mark.parametrize("entry", ["../evil.txt", "/tmp/alloy-evil.txt", "a/../../evil.txt"])
def test_zip_slip_entry_is_refused_before_anything_is_written(
    project: Path, tmp_path: Path, entry: str
) -> None:
    """An entry with an absolute path or `..` exits 1 with one line; nothing is extracted."""
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        zf.writestr("first.txt", "harmless")
        zf.writestr(zipfile.ZipInfo(entry), "x")
    done = run_helper(project, "extract", "--file", str(tmp_path / "evil.zip"))
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert entry in done.stderr
    assert not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/alloy-evil.txt").exists()
    assert list(project.iterdir()) == []


def test_missing_archive_is_a_warning_and_exit_0(project: Path) -> None:
    """A cache that does not exist yet is not an error: one warning, exit 0."""
    done = run_helper(project, "extract", "--file", "cache.zip")
    assert done.returncode == 0
    assert done.stdout.strip() == "WARNING: cache.zip: archive not found"


def test_missing_archive_with_required_exits_1(project: Path) -> None:
    """With `--required` a missing archive exits 1 with one line on stderr."""
    done = run_helper(project, "extract", "--file", "cache.zip", "--required")
    assert done.returncode == 1
    assert done.stderr.strip() == "ERROR: cache.zip: archive not found"


def test_corrupt_archive_exits_1(project: Path) -> None:
    """A file that is not a zip archive exits 1 with one line on stderr."""
    (project / "cache.zip").write_text("not a zip")
    done = run_helper(project, "extract", "--file", "cache.zip")
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR: cache.zip: cannot read archive")
    assert len(done.stderr.splitlines()) == 1


def test_nothing_matched_warns_exits_0_and_writes_no_file(project: Path) -> None:
    """No match is a warning per pattern and overall, exit 0, and no archive."""
    done = run_helper(project, "archive", "--file", "out.zip", "--path", "missing/**/*.txt")
    assert done.returncode == 0
    assert "WARNING: missing/**/*.txt: no matching files" in done.stdout
    assert (
        done.stdout.splitlines()[-1] == "WARNING: out.zip: no matching files, archive not created"
    )
    assert not (project / "out.zip").exists()


@pytest.mark.parametrize("out", ["is-a-dir", "is-a-file/out.zip", "no-such-dir/out.zip"])
def test_unwritable_output_exits_1_and_leaves_no_partial_file(project: Path, out: str) -> None:
    """An unwritable OUT exits 1 with one stderr line; no OUT or OUT.tmp is left behind."""
    make_tree(project, {"a.txt": "a", "is-a-file": "f"})
    (project / "is-a-dir").mkdir()
    done = run_helper(project, "archive", "--file", out, "--path", "a.txt")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"ERROR: {out}: cannot write archive")
    assert sorted(p.name for p in project.iterdir()) == ["a.txt", "is-a-dir", "is-a-file"]
    assert list((project / "is-a-dir").iterdir()) == []


@pytest.mark.parametrize("args", [[], ["archive"], ["extract"]])
def test_help_works_for_each_command(project: Path, args: list[str]) -> None:
    """`--help` prints usage and exits 0 for the helper and each subcommand."""
    done = run_helper(project, *args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m alloy_runner.helper")


def test_help_imports_no_opentelemetry_nor_heavy_modules(project: Path) -> None:
    """The helper starts fast: `-X importtime` shows no opentelemetry, prometheus or click."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "alloy_runner.helper", "--help"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    assert {"alloy_runner.exceptions", "zipfile"} <= imported
    heavy = {
        m for m in imported if m.split(".")[0] in {"opentelemetry", "prometheus_client", "click"}
    }
    assert heavy == set()
