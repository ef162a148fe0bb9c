"""Archive and extract artifacts and caches inside the build environment.

The runner's `gitlab-runner-helper`: executors run `python -m alloy_runner.helper
archive|extract ...` in the project directory; the runner may call `archive` and
`extract` in-process. Standard library only, so that it starts fast.
"""

from __future__ import annotations

import argparse
import itertools
import os
import posixpath
import shutil
import stat
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alloy_runner.exceptions import ArchiveNotFoundError, HelperError, UnsafeEntryError
from alloy_runner.helper.globs import compile_glob, glob_paths, inside, normalize, walk

__all__ = [
    "ArchiveNotFoundError",
    "ArchiveResult",
    "HelperError",
    "UnsafeEntryError",
    "archive",
    "extract",
    "main",
]

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_OUTSIDE = "artifact path is not a subpath of project directory"
_RELATIVE = "Ensure that the artifact path is relative to the working directory"


@dataclass(frozen=True)
class ArchiveResult:
    """What `archive` did; `lines` are the log lines it produced, in order."""

    path: Path
    created: bool
    entries: int
    size: int
    lines: tuple[str, ...]


def _untracked(root: Path) -> tuple[list[str], str | None]:
    """Return the files git neither tracks nor ignores, or why it cannot tell."""
    command = ["git", "ls-files", "--others", "--exclude-standard", "-z"]
    try:
        done = subprocess.run(command, cwd=root, capture_output=True, check=False, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [], str(exc)
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        return [], reason[0] if reason else f"git exited with {done.returncode}"
    return [name for name in done.stdout.decode(errors="surrogateescape").split("\0") if name], None


class _Selection:
    """The entries an archive will hold: matched, not excluded, inside the project."""

    def __init__(
        self, root: Path, excludes: Sequence[str], skip: set[str], say: Callable[[str], None]
    ) -> None:
        self.root, self.root_real, self.skip, self.say = root, os.path.realpath(root), skip, say
        self.excludes = {
            pattern: compile_glob(norm)
            for pattern in excludes
            if (norm := normalize(pattern, root))
        }
        self.excluded: dict[str, set[str]] = {pattern: set() for pattern in self.excludes}
        self.entries: set[str] = set()
        self.parents: dict[str, bool] = {}  # resolving is slow: once per directory

    def add(self, match: str, visited: set[str]) -> int:
        """Add a match, recursively if a directory; return how many new entries it admitted."""
        if match in visited:
            return 0
        parent = posixpath.dirname(match)
        if parent not in self.parents:
            real = os.path.realpath(self.root / parent)
            self.parents[parent] = inside(real, self.root_real)
        if match and not self.parents[parent]:
            self.say(f"WARNING: {match}: {_OUTSIDE}: {self.root}")
            return 0
        rels: Iterator[str] = iter([match] if match else [])
        if not (match and os.path.islink(self.root / match)):
            rels = itertools.chain(rels, walk(self.root, match))
        found = 0
        for rel in rels:
            visited.add(rel)
            if rel not in self.skip and not self._excluded(rel) and self._admissible(rel):
                self.entries.add(rel)
                found += 1
        return found

    def _excluded(self, rel: str) -> bool:
        for pattern, regex in self.excludes.items():
            if regex.fullmatch(rel):
                self.excluded[pattern].add(rel)
                return True
        return False

    def _admissible(self, rel: str) -> bool:
        path = self.root / rel
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return False
        if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
            return True
        if not stat.S_ISLNK(mode):
            self.say(f"WARNING: {rel}: not a regular file, directory or symlink, skipped")
        elif inside(os.path.realpath(path), self.root_real):
            return True
        else:
            self.say(f"WARNING: {rel}: symlink points outside the project directory, skipped")
        return False


def _write_entry(zf: zipfile.ZipFile, path: Path, rel: str) -> None:
    """Add one file or directory, or a symlink as a symlink (its target is the content)."""
    status = os.lstat(path)
    if not stat.S_ISLNK(status.st_mode):
        zf.write(path, rel)
        return
    mtime = time.localtime(status.st_mtime)
    stamp = (mtime.tm_year, mtime.tm_mon, mtime.tm_mday, mtime.tm_hour, mtime.tm_min, mtime.tm_sec)
    info = zipfile.ZipInfo(rel, max(stamp, _ZIP_EPOCH))
    info.create_system = 3  # unix: readers take the mode, and so the link type, from it
    info.external_attr = (status.st_mode & 0xFFFF) << 16
    zf.writestr(info, os.readlink(path))


def _human(size: int) -> str:
    power = min(3, max(0, (size.bit_length() - 1) // 10))
    return f"{size} bytes" if power == 0 else f"{size / 1024**power:.1f} {'KMG'[power - 1]}iB"


def _select(selection: _Selection, paths: Sequence[str], untracked: bool) -> _Selection:
    """Add what each of `paths` (and git's untracked files) matches, saying what was found."""
    root, say = selection.root, selection.say
    for pattern in paths:
        norm = normalize(pattern, root)
        if norm is None:
            say(f"WARNING: {pattern}: {_OUTSIDE}: {root}")
            continue
        visited: set[str] = set()
        matches = sorted(glob_paths(root, norm))
        found = sum(selection.add(match, visited) for match in matches)
        if found:
            say(f"{pattern}: found {found} matching artifact files and directories")
        else:
            say(f"WARNING: {pattern}: no matching files. {_RELATIVE} ({root})")
    if untracked:
        names, problem = _untracked(root)
        if problem is None:
            visited = set()
            found = sum(selection.add(name, visited) for name in names)
            say(f"untracked: found {found} files")
        else:
            say(f"WARNING: untracked: not a git work tree, ignored ({problem})")
    for pattern, rels in selection.excluded.items():
        say(f"{pattern}: excluded {len(rels)} files and directories")
    return selection


def _write_zip(target: Path, tmp: Path, root: Path, entries: set[str], out: Path) -> int:
    """Write `entries` to `tmp`, then rename it to `target`; return the archive's size."""
    try:
        # A new file, never through a symlink there: a job's container may write this directory.
        if tmp.is_symlink() or tmp.is_file():
            tmp.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        with (
            os.fdopen(os.open(tmp, flags, 0o644), "w+b") as file,
            zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, strict_timestamps=False) as zf,
        ):
            for rel in sorted(entries):
                _write_entry(zf, root / rel, rel)
        os.replace(tmp, target)
        return target.stat().st_size
    except BaseException as exc:
        if tmp.is_file():
            tmp.unlink()
        if isinstance(exc, OSError):
            raise HelperError(f"{out}: cannot write archive: {exc}") from exc
        raise


def archive(
    out: Path,
    paths: Sequence[str],
    excludes: Sequence[str] = (),
    untracked: bool = False,
    root: Path | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ArchiveResult:
    """Write the entries `paths` match, less `excludes`, to the zip `out`, atomically.

    Relative paths start at `root` (default: the current directory). Paths and
    symlinks leading outside it are skipped with a warning. When nothing matches,
    no file is written and `created` is false. Each log line also goes to `log`
    as it is produced. Raises `HelperError` when `out` cannot be written; a
    previous `out` is then left as it was.
    """
    root = (root or Path.cwd()).absolute()
    target = root / out
    tmp = target.with_name(target.name + ".tmp")
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log is not None:
            log(line)

    skip = {rel for path in (target, tmp) if (rel := normalize(str(path), root))}
    selection = _select(_Selection(root, excludes, skip, say), paths, untracked)
    if not selection.entries:
        say(f"WARNING: {out}: no matching files, archive not created")
        return ArchiveResult(target, False, 0, 0, tuple(lines))
    size = _write_zip(target, tmp, root, selection.entries, out)
    entries = len(selection.entries)
    say(f"{out}: created archive with {entries} entries, {_human(size)}")
    return ArchiveResult(target, True, entries, size, tuple(lines))


def _checked_parts(info: zipfile.ZipInfo, zf: zipfile.ZipFile) -> tuple[str, ...]:
    """Return an entry's path components; refuse absolute paths, `..` and escaping symlinks."""
    name = info.filename
    parts = tuple(part for part in name.split("/") if part not in ("", "."))
    if name.startswith("/") or ".." in parts:
        raise UnsafeEntryError(f"{name}: archive entry points outside the extraction directory")
    if stat.S_ISLNK(info.external_attr >> 16):
        link = zf.read(info).decode(errors="surrogateescape")
        lands = posixpath.normpath(posixpath.join(*parts[:-1], link) if parts[:-1] else link)
        if link.startswith("/") or lands == ".." or lands.startswith("../"):
            raise UnsafeEntryError(
                f"{name}: symlink to {link} points outside the extraction directory"
            )
    return parts


def _restore(path: Path, info: zipfile.ZipInfo) -> None:
    """Give an extracted file or directory its archived permissions and modification time."""
    mode = (info.external_attr >> 16) & 0o777  # never setuid, setgid or sticky
    if mode:
        os.chmod(path, mode)
    mtime = time.mktime((*info.date_time, 0, 0, -1))
    os.utime(path, (mtime, mtime))


def extract(archive: Path, root: Path | None = None) -> int:
    """Extract the zip `archive` into `root` (default: the current directory); return its entries.

    Raises `ArchiveNotFoundError` when there is no archive, `UnsafeEntryError`
    when an entry would land outside `root` (names and link targets are checked
    before anything is written), `HelperError` when it cannot be read or written.
    """
    root = (root or Path.cwd()).absolute()
    source = root / archive
    if not source.is_file():
        raise ArchiveNotFoundError(f"{archive}: archive not found")
    root_real = os.path.realpath(root)
    try:
        with zipfile.ZipFile(source) as zf:
            plan = [(info, _checked_parts(info, zf)) for info in zf.infolist()]
            directories: list[tuple[Path, zipfile.ZipInfo]] = []
            for info, parts in plan:
                if not parts:
                    continue
                dest = root.joinpath(*parts)
                if not inside(os.path.realpath(dest.parent), root_real):
                    raise UnsafeEntryError(f"{info.filename}: would be written through a symlink")
                dest.parent.mkdir(parents=True, exist_ok=True)
                if info.is_dir():
                    dest.mkdir(exist_ok=True)
                    directories.append((dest, info))
                    continue
                if os.path.lexists(dest):
                    dest.unlink()  # never write through a symlink that is already there
                if stat.S_ISLNK(info.external_attr >> 16):
                    os.symlink(zf.read(info).decode(errors="surrogateescape"), dest)
                    continue
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                _restore(dest, info)
            for dest, info in reversed(directories):  # last, so read-only dirs could be filled
                _restore(dest, info)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
        raise HelperError(f"{archive}: cannot read archive: {exc}") from exc
    except OSError as exc:
        raise HelperError(f"{archive}: cannot extract: {exc}") from exc
    return sum(1 for _, parts in plan if parts)


def _say(line: str) -> None:
    print(line, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m alloy_runner.helper",
        description="Archive and extract artifacts and caches in the build's project directory.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    create = commands.add_parser(
        "archive",
        help="zip what the paths match",
        description="Zip files, directories (recursively) and globs (`*`, `?`, `**`, `[...]`) "
        "into --file, atomically. Nothing matched: a warning, exit 0, no file.",
    )
    create.add_argument("--file", required=True, type=Path, metavar="OUT.zip")
    create.add_argument("--path", action="append", default=[], metavar="GLOB")
    create.add_argument(
        "--exclude", action="append", default=[], metavar="GLOB", help="not recursive: use dir/**"
    )
    create.add_argument("--untracked", action="store_true", help="add git's untracked files")
    unpack = commands.add_parser(
        "extract",
        help="unzip an archive here",
        description="Extract --file here, keeping modes and symlinks. A missing archive "
        "is a warning (exit 0) unless --required.",
    )
    unpack.add_argument("--file", required=True, type=Path, metavar="IN.zip")
    unpack.add_argument("--required", action="store_true", help="a missing archive exits 1")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one helper command; return the exit status (1: archive unusable, 2: bad usage)."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "archive":
            archive(args.file, args.path, args.exclude, args.untracked, log=_say)
        else:
            _say(f"{args.file}: extracted {extract(args.file)} entries")
    except ArchiveNotFoundError as exc:
        if not args.required:
            _say(f"WARNING: {exc}")
            return 0
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except HelperError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
