"""`python -m alloy_runner.helper`: archiving and extracting artifacts and caches."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from alloy_runner.exceptions import HelperError, UnsafeEntryError
from alloy_runner.helper import archive as helper
from alloy_runner.helper.archive import archive, extract


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


def make_tree(root: Path, files: dict[str, str]) -> None:
    """Create `files` (relative path -> content) under `root`."""
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def names(path: Path) -> set[str]:
    """Return the entry names of a zip archive."""
    with zipfile.ZipFile(path) as zf:
        return set(zf.namelist())


def symlink_entry(zf: zipfile.ZipFile, name: str, target: str) -> None:
    """Add a unix symlink entry, as a hostile or foreign archive might."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, target)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """An empty project directory, with room beside it for things outside the project."""
    root = tmp_path / "project"
    root.mkdir()
    return root


def test_round_trip_keeps_content_directories_modes_and_symlinks(project: Path, tmp_path: Path):
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


def test_doublestar_matches_at_any_depth_and_star_stays_in_one_directory(project: Path):
    """`**/` spans zero or more directories; `*` and `?` never cross a `/`; dotfiles match."""
    make_tree(project, {n: "x" for n in ["a.c", "x/b.c", "x/y/c.c", "x/d.h", ".e.c", "src/f.c"]})
    result = archive(Path("all.zip"), ["**/*.c"], root=project)
    assert names(project / "all.zip") == {"a.c", "x/b.c", "x/y/c.c", ".e.c", "src/f.c"}
    assert result.entries == 5
    archive(Path("top.zip"), ["*.c", "?/*.h"], root=project)
    assert names(project / "top.zip") == {"a.c", ".e.c", "x/d.h"}
    archive(Path("mid.zip"), ["x/**/*.c"], root=project)
    assert names(project / "mid.zip") == {"x/b.c", "x/y/c.c"}


def test_directory_match_is_recursive(project: Path):
    """A directory, named or globbed, brings its whole subtree."""
    make_tree(project, {"build/out/app": "bin", "build/log.txt": "log", "other": "o"})
    archive(Path("a.zip"), ["buil?"], root=project)
    assert names(project / "a.zip") == {"build/", "build/out/", "build/out/app", "build/log.txt"}


def test_exclude_removes_matches_and_is_not_recursive(project: Path):
    """`--exclude` drops what it matches; like GitLab it does not recurse into a matched dir."""
    make_tree(project, {"src/a.c": "", "src/a.o": "", "src/sub/b.o": "", "src/cache/x": ""})
    args = ["--path=src", "--exclude=src/**/*.o", "--exclude=src/cache"]
    done = run_helper(project, "archive", "--file", "out.zip", *args)
    assert done.returncode == 0, done.stderr
    assert names(project / "out.zip") == {"src/", "src/a.c", "src/sub/", "src/cache/x"}
    assert "src/**/*.o: excluded 2 files and directories" in done.stdout


def git(cwd: Path, *args: str) -> None:
    """Run git in a test repository, with an identity of its own."""
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def test_untracked_adds_files_git_neither_tracks_nor_ignores(project: Path):
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


def test_untracked_outside_a_git_work_tree_is_ignored_with_a_message(project: Path):
    """Without a git work tree `--untracked` adds nothing and says why; other paths still count."""
    make_tree(project, {"a.txt": "a"})
    done = run_helper(project, "archive", "--file", "out.zip", "--untracked", "--path", "a.txt")
    assert done.returncode == 0, done.stderr
    assert "WARNING: untracked: not a git work tree, ignored" in done.stdout
    assert names(project / "out.zip") == {"a.txt"}


def test_paths_and_symlinks_outside_the_project_are_skipped_with_a_warning(
    project: Path, tmp_path: Path
):
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


def test_the_archive_does_not_contain_itself(project: Path):
    """Archiving `.` into a file inside the project leaves out that file and its temporary."""
    make_tree(project, {"a": "a", "out.zip": "stale"})
    archive(Path("out.zip"), ["."], root=project)
    assert names(project / "out.zip") == {"a"}


@pytest.mark.parametrize("entry", ["../evil.txt", "/tmp/alloy-evil.txt", "a/../../evil.txt"])
def test_zip_slip_entry_is_refused_before_anything_is_written(
    project: Path, tmp_path: Path, entry: str
):
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


def test_symlink_escaping_the_directory_is_refused(project: Path, tmp_path: Path):
    """A link pointing outside, then a file through it, cannot plant a file outside."""
    (tmp_path / "outside").mkdir()
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as zf:
        symlink_entry(zf, "escape", "../outside")
        zf.writestr("escape/planted", "x")
    with pytest.raises(UnsafeEntryError, match="escape"):
        extract(tmp_path / "evil.zip", root=project)
    assert list((tmp_path / "outside").iterdir()) == []


def test_extract_replaces_an_existing_symlink_instead_of_writing_through_it(
    project: Path, tmp_path: Path
):
    """A file entry whose path is already a symlink replaces the link; its target is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("original")
    (project / "cache.bin").symlink_to(victim)
    with zipfile.ZipFile(tmp_path / "c.zip", "w") as zf:
        zf.writestr("cache.bin", "new")
    assert extract(tmp_path / "c.zip", root=project) == 1
    assert victim.read_text() == "original"
    assert not (project / "cache.bin").is_symlink()
    assert (project / "cache.bin").read_text() == "new"


def test_missing_archive_is_a_warning_and_exit_0(project: Path):
    """A cache that does not exist yet is not an error: one warning, exit 0."""
    done = run_helper(project, "extract", "--file", "cache.zip")
    assert done.returncode == 0
    assert done.stdout.strip() == "WARNING: cache.zip: archive not found"


def test_missing_archive_with_required_exits_1(project: Path):
    """With `--required` a missing archive exits 1 with one line on stderr."""
    done = run_helper(project, "extract", "--file", "cache.zip", "--required")
    assert done.returncode == 1
    assert done.stderr.strip() == "ERROR: cache.zip: archive not found"


def test_corrupt_archive_exits_1(project: Path):
    """A file that is not a zip archive exits 1 with one line on stderr."""
    (project / "cache.zip").write_text("not a zip")
    done = run_helper(project, "extract", "--file", "cache.zip")
    assert done.returncode == 1
    assert done.stderr.startswith("ERROR: cache.zip: cannot read archive")
    assert len(done.stderr.splitlines()) == 1


def test_nothing_matched_warns_exits_0_and_writes_no_file(project: Path):
    """No match is a warning per pattern and overall, exit 0, and no archive."""
    done = run_helper(project, "archive", "--file", "out.zip", "--path", "missing/**/*.txt")
    assert done.returncode == 0
    assert "WARNING: missing/**/*.txt: no matching files" in done.stdout
    assert (
        done.stdout.splitlines()[-1] == "WARNING: out.zip: no matching files, archive not created"
    )
    assert not (project / "out.zip").exists()


@pytest.mark.parametrize("out", ["is-a-dir", "is-a-file/out.zip", "no-such-dir/out.zip"])
def test_unwritable_output_exits_1_and_leaves_no_partial_file(project: Path, out: str):
    """An unwritable OUT exits 1 with one stderr line; no OUT or OUT.tmp is left behind."""
    make_tree(project, {"a.txt": "a", "is-a-file": "f"})
    (project / "is-a-dir").mkdir()
    done = run_helper(project, "archive", "--file", out, "--path", "a.txt")
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"ERROR: {out}: cannot write archive")
    assert sorted(p.name for p in project.iterdir()) == ["a.txt", "is-a-dir", "is-a-file"]
    assert list((project / "is-a-dir").iterdir()) == []


def test_failure_while_writing_keeps_the_previous_archive(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    """The archive is written to OUT.tmp and renamed: a failure midway leaves the old OUT."""
    make_tree(project, {"a": "a", "b": "b"})
    archive(Path("out.zip"), ["a"], root=project)
    before = (project / "out.zip").read_bytes()
    real_write = helper._write_entry

    def fail_on_b(zf: zipfile.ZipFile, path: Path, rel: str) -> None:
        if rel == "b":
            raise OSError(28, "No space left on device")
        real_write(zf, path, rel)

    monkeypatch.setattr(helper, "_write_entry", fail_on_b)
    with pytest.raises(HelperError, match="No space left"):
        archive(Path("out.zip"), ["a", "b"], root=project)
    assert (project / "out.zip").read_bytes() == before
    assert not (project / "out.zip.tmp").exists()


@pytest.mark.parametrize("args", [[], ["archive"], ["extract"]])
def test_help_works_for_each_command(project: Path, args: list[str]):
    """`--help` prints usage and exits 0 for the helper and each subcommand."""
    done = run_helper(project, *args, "--help")
    assert done.returncode == 0
    assert done.stdout.startswith("usage: python -m alloy_runner.helper")


def test_help_imports_no_opentelemetry_nor_heavy_modules(project: Path):
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
