"""What a pipeline knows of its repository: the commit, ref, default branch and changes.

GitLab takes these from the push that started the pipeline; here they come from the
repository the `.alloy-ci.yml` lives in (its HEAD, or the ref `submit --ref` names).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from alloy_runner.exceptions import PipelineError

ZERO_SHA = "0" * 40
SOURCES = (
    *("push", "web", "schedule", "api", "trigger", "pipeline", "parent_pipeline"),
    *("merge_request_event", "external", "chat", "webide", "external_pull_request_event"),
)


def git(cwd: Path, *args: str) -> str | None:
    """Run git in `cwd`; return its stripped output, or None when it fails."""
    try:
        out = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def slug(ref: str) -> str:
    """GitLab's `CI_COMMIT_REF_SLUG`: lower case, [a-z0-9] kept, the rest '-', 63 at most."""
    return re.sub(r"[^a-z0-9]", "-", ref.lower())[:63].strip("-")


@dataclass(frozen=True)
class Repo:
    """The commit a pipeline runs for, and where its files are (`root`)."""

    root: Path
    sha: str = ZERO_SHA
    ref: str = "main"
    is_tag: bool = False
    default_branch: str = "main"
    message: str = ""
    author: str = ""
    timestamp: str = ""
    parent: str | None = None
    project_path: str = "local/project"
    source: str = "push"
    in_git: bool = False
    changed: frozenset[str] | None = field(default=None, compare=False)

    def predefined(self, pipeline_id: int = 0) -> dict[str, str]:
        """The pipeline's predefined variables, as GitLab sets them for this commit and ref."""
        values = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_SERVER": "yes",
            "CI_COMMIT_SHA": self.sha,
            "CI_COMMIT_SHORT_SHA": self.sha[:8],
            "CI_COMMIT_BEFORE_SHA": ZERO_SHA,
            "CI_COMMIT_REF_NAME": self.ref,
            "CI_COMMIT_REF_SLUG": slug(self.ref),
            "CI_COMMIT_MESSAGE": self.message,
            "CI_COMMIT_TITLE": self.message.split("\n", 1)[0],
            "CI_COMMIT_DESCRIPTION": self.message.partition("\n")[2].lstrip("\n"),
            "CI_COMMIT_AUTHOR": self.author,
            "CI_COMMIT_TIMESTAMP": self.timestamp,
            "CI_DEFAULT_BRANCH": self.default_branch,
            "CI_PIPELINE_SOURCE": self.source,
            "CI_PROJECT_NAME": self.project_path.rsplit("/", 1)[-1],
            "CI_PROJECT_PATH": self.project_path,
            "CI_PROJECT_PATH_SLUG": slug(self.project_path),
            "CI_PROJECT_NAMESPACE": self.project_path.rsplit("/", 1)[0],
        }
        values["CI_COMMIT_TAG" if self.is_tag else "CI_COMMIT_BRANCH"] = self.ref
        if pipeline_id:
            values["CI_PIPELINE_ID"] = values["CI_PIPELINE_IID"] = str(pipeline_id)
        return values

    def changes_known(self) -> bool:
        """Whether `changes` compares files: GitLab says it is always true without a push."""
        return self.changed is not None and self.source in ("push", "merge_request_event")


def read_repo(directory: Path, ref: str | None = None, source: str = "push") -> Repo:
    """Describe the repository holding `directory` at HEAD (or at `ref`)."""
    if source not in SOURCES:
        raise PipelineError(f"--source {source!r} is not one of {', '.join(SOURCES)}")
    top = git(directory, "rev-parse", "--show-toplevel")
    if top is None:
        if ref is not None:
            raise PipelineError(f"--ref {ref!r}: {directory} is not in a git repository")
        return Repo(root=directory.resolve(), source=source, project_path=_path_of(directory))
    root = Path(top)
    name = ref or git(root, "symbolic-ref", "--short", "-q", "HEAD")
    sha = git(root, "rev-parse", "-q", "--verify", f"{ref or 'HEAD'}^{{commit}}")
    if sha is None:
        what = f"--ref {ref!r} names no commit" if ref else "the repository has no commit yet"
        raise PipelineError(f"{root}: {what}")
    is_tag = False
    if ref is not None and git(root, "rev-parse", "-q", "--verify", f"refs/tags/{ref}"):
        is_tag = git(root, "rev-parse", "-q", "--verify", f"refs/heads/{ref}") is None
    parent = git(root, "rev-parse", "-q", "--verify", f"{sha}^")
    changed = None
    if parent:
        listing = git(root, "diff", "--name-only", "-z", parent, sha)
        changed = frozenset(p for p in (listing or "").split("\0") if p)
    return Repo(
        root=root,
        sha=sha,
        ref=name or sha,
        is_tag=is_tag,
        default_branch=_default_branch(root, name),
        **_commit_facts(root, sha),
        parent=parent,
        project_path=_path_of(root),
        source=source,
        in_git=True,
        changed=changed,
    )


def _commit_facts(root: Path, sha: str) -> dict[str, str]:
    out = git(root, "log", "-1", "--format=%an <%ae>%x00%cI%x00%B", sha) or "\0\0"
    author, timestamp, message = [*out.split("\0", 2), "", ""][:3]
    return {"author": author, "timestamp": timestamp, "message": message.strip()}


def _default_branch(root: Path, current: str | None) -> str:
    remote = git(root, "symbolic-ref", "--short", "-q", "refs/remotes/origin/HEAD")
    if remote:
        return remote.removeprefix("origin/")
    configured = git(root, "config", "init.defaultBranch")
    for candidate in (configured, "main", "master"):
        if candidate and git(root, "rev-parse", "-q", "--verify", f"refs/heads/{candidate}"):
            return candidate
    return current or "main"


def _path_of(root: Path) -> str:
    root = root.resolve()
    return f"{root.parent.name or 'local'}/{root.name or 'project'}"
