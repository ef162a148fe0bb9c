"""`alloy_runner.helper.archive` in-process: archiving and extracting artifacts and caches."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from alloy_runner.exceptions import HelperError, UnsafeEntryError
from alloy_runner.helper import archive as helper
from alloy_runner.helper.archive import archive, extract
from tests.support.archives import make_tree, names


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


def test_doublestar_matches_at_any_depth_and_star_stays_in_one_directory(project: Path) -> None:
    """`**/` spans zero or more directories; `*` and `?` never cross a `/`; dotfiles match."""
    make_tree(project, {n: "x" for n in ["a.c", "x/b.c", "x/y/c.c", "x/d.h", ".e.c", "src/f.c"]})
    result = archive(Path("all.zip"), ["**/*.c"], root=project)
    assert names(project / "all.zip") == {"a.c", "x/b.c", "x/y/c.c", ".e.c", "src/f.c"}
    assert result.entries == 5
    archive(Path("top.zip"), ["*.c", "?/*.h"], root=project)
    assert names(project / "top.zip") == {"a.c", ".e.c", "x/d.h"}
    archive(Path("mid.zip"), ["x/**/*.c"], root=project)
    assert names(project / "mid.zip") == {"x/b.c", "x/y/c.c"}


def test_directory_match_is_recursive(project: Path) -> None:
    """A directory, named or globbed, brings its whole subtree."""
    make_tree(project, {"build/out/app": "bin", "build/log.txt": "log", "other": "o"})
    archive(Path("a.zip"), ["buil?"], root=project)
    assert names(project / "a.zip") == {"build/", "build/out/", "build/out/app", "build/log.txt"}


def test_the_archive_does_not_contain_itself(project: Path) -> None:
    """Archiving `.` into a file inside the project leaves out that file and its temporary."""
    make_tree(project, {"a": "a", "out.zip": "stale"})
    archive(Path("out.zip"), ["."], root=project)
    assert names(project / "out.zip") == {"a"}


def test_symlink_escaping_the_directory_is_refused(project: Path, tmp_path: Path) -> None:
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
) -> None:
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


def test_failure_while_writing_keeps_the_previous_archive(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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


def test_a_symlink_planted_at_the_temporary_archive_is_not_written_through(
    tmp_path: Path,
) -> None:
    """The docker executors archive on the host into a directory the job's container can
    write: a symlink there must not turn the archive into a write to a host file."""
    project, victim = tmp_path / "p", tmp_path / "victim.txt"
    project.mkdir()
    (project / "a.txt").write_text("a\n")
    victim.write_text("operator's file\n")
    (project / "out.zip.tmp").symlink_to(victim)
    result = archive(Path("out.zip"), ["a.txt"], root=project)
    assert result.created
    assert victim.read_text() == "operator's file\n"
    assert not (project / "out.zip").is_symlink()
    with zipfile.ZipFile(project / "out.zip") as zf:
        assert zf.namelist() == ["a.txt"]
