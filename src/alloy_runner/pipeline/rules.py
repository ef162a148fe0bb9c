"""Which jobs a pipeline has: `rules`, `only`/`except` and `workflow:rules`, as GitLab decides."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alloy_runner.pipeline.expressions import ExpressionError, evaluate, regex_literal
from alloy_runner.pipeline.globs import any_match
from alloy_runner.pipeline.marked_yaml import LineMap
from alloy_runner.pipeline.repo import Repo, git
from alloy_runner.pipeline.report import Reporter
from alloy_runner.pipeline.variables import VarTable, read_variables

RULE_WHENS = ("on_success", "on_failure", "always", "manual", "delayed", "never")
RULE_KEYS = ("if", "changes", "exists", "when", "allow_failure", "variables", "needs", "start_in")
REF_SOURCES = {
    "api": "api",
    "chat": "chat",
    "external": "external",
    "external_pull_requests": "external_pull_request_event",
    "merge_requests": "merge_request_event",
    "pipelines": "pipeline",
    "pushes": "push",
    "schedules": "schedule",
    "triggers": "trigger",
    "web": "web",
}
ONLY_KEYS = ("refs", "variables", "changes", "kubernetes")


@dataclass(frozen=True)
class Decision:
    """A matching rule's verdict: when the job runs and what the rule sets for it."""

    when: str | None = None  # None: the job's own `when`
    allow_failure: bool | None = None
    variables: VarTable = field(default_factory=VarTable)
    needs: tuple[Any, int] | None = None  # the rule's raw `needs` and its line
    start_in: tuple[Any, int] | None = None


class Selector:
    """Evaluates conditions for one pipeline: its repository, ref and source."""

    def __init__(self, reporter: Reporter, repo: Repo) -> None:
        self.reporter, self.repo = reporter, repo
        self._files: list[str] | None = None

    def files(self) -> list[str]:
        """The commit's files (the working tree's when the directory is not a repository)."""
        if self._files is None:
            listing = git(self.repo.root, "ls-tree", "-r", "-z", "--name-only", self.repo.sha)
            if self.repo.in_git and listing is not None:
                self._files = [p for p in listing.split("\0") if p]
            else:
                root = self.repo.root
                found = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
                self._files = sorted(found)
        return self._files

    def condition(self, text: Any, line: int, where: str, values: Mapping[str, str]) -> bool:
        if not isinstance(text, str):
            self.reporter.fail(line, f"{where}if must be a string expression")
        try:
            return evaluate(text, values)
        except ExpressionError as exc:
            self.reporter.fail(line, f"{where}if {text!r}: {exc}")

    def _patterns(self, rule: LineMap, key: str, where: str, table: VarTable) -> list[str]:
        value = rule[key]
        if isinstance(value, LineMap):
            for extra in value:
                if extra not in ("paths", "compare_to", "project", "ref"):
                    self.reporter.fail(value.at(extra), f"{where}{key}: unknown key {extra!r}")
            if "project" in value:
                self.reporter.fail(value.at("project"), f"{where}{key}:project cannot be read here")
            value = value.get("paths", [])
        if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
            self.reporter.fail(rule.at(key), f"{where}{key} must be a list of file patterns")
        return [table.expand(p) for p in value]

    def exists(self, rule: LineMap, where: str, table: VarTable) -> bool:
        return any_match(self._patterns(rule, "exists", where, table), self.files())

    def changes(self, rule: LineMap, where: str, table: VarTable) -> bool:
        patterns = self._patterns(rule, "changes", where, table)
        value = rule["changes"]
        compare_to = value.get("compare_to") if isinstance(value, LineMap) else None
        if compare_to is not None:
            if not self.repo.in_git:
                return True
            listing = git(
                self.repo.root, "diff", "--name-only", "-z", str(compare_to), self.repo.sha
            )
            if listing is None:
                self.reporter.fail(
                    rule.at("changes"), f"{where}changes:compare_to {compare_to!r} names no commit"
                )
            return any_match(patterns, (p for p in listing.split("\0") if p))
        if not self.repo.changes_known() or self.repo.changed is None:
            return True  # GitLab: always true without a push to compare
        return any_match(patterns, self.repo.changed)

    def rules(self, value: Any, line: int, where: str, table: VarTable) -> Decision | None:
        """Return the first matching rule's decision, or None when no rule lets the job in."""
        if not isinstance(value, list):
            self.reporter.fail(line, f"{where}rules must be a list of rules")
        values = table.expanded()
        for rule in _flatten(value):
            if not isinstance(rule, LineMap):
                self.reporter.fail(line, f"{where}each rule must be a mapping")
            for key in rule:
                if key not in RULE_KEYS:
                    self.reporter.fail(rule.at(key), f"{where}rules: unknown key {key!r}")
            if "if" in rule and not self.condition(rule["if"], rule.at("if"), where, values):
                continue
            if "exists" in rule and not self.exists(rule, where, table):
                continue
            if "changes" in rule and not self.changes(rule, where, table):
                continue
            return self._decision(rule, where)
        return None

    def _decision(self, rule: LineMap, where: str) -> Decision | None:
        when = rule.get("when")
        if when is not None and when not in RULE_WHENS:
            self.reporter.fail(
                rule.at("when"), f"{where}rules:when must be one of " + ", ".join(RULE_WHENS)
            )
        if when == "never":
            return None
        allow = rule.get("allow_failure")
        if allow is not None and not isinstance(allow, bool):
            self.reporter.fail(
                rule.at("allow_failure"), f"{where}rules:allow_failure must be a bool"
            )
        return Decision(
            when=when,
            allow_failure=allow,
            variables=read_variables(self.reporter, rule, f"{where}rules:"),
            needs=(rule["needs"], rule.at("needs")) if "needs" in rule else None,
            start_in=(rule["start_in"], rule.at("start_in")) if "start_in" in rule else None,
        )

    def only_except(self, job: LineMap, where: str, values: Mapping[str, str]) -> bool:
        """Whether `only` lets the job in and `except` does not keep it out."""
        only = job.get("only", ["branches", "tags"])
        if not self._matches(only, job.at("only"), f"{where}only:", values, every=True):
            return False
        if "except" not in job:
            return True
        return not self._matches(
            job["except"], job.at("except"), f"{where}except:", values, every=False
        )

    def _matches(
        self, value: Any, line: int, where: str, values: Mapping[str, str], every: bool
    ) -> bool:
        if value is None:
            return every
        if isinstance(value, str | list):
            value = {"refs": value}
        if not isinstance(value, dict):
            self.reporter.fail(line, f"{where} must be a list of refs or a mapping")
        checks: list[Callable[[], bool]] = []
        for key, item in value.items():
            at = value.at(key) if isinstance(value, LineMap) else line
            if key not in ONLY_KEYS:
                self.reporter.fail(at, f"{where} unknown key {key!r}")
            items = [item] if isinstance(item, str) else item
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                self.reporter.fail(at, f"{where}{key} must be a list of strings")
            checks.append(self._check(key, items, at, where, values))
        results = (check() for check in checks)
        return all(results) if every else any(results)

    def _check(
        self, key: str, items: list[str], line: int, where: str, values: Mapping[str, str]
    ) -> Callable[[], bool]:
        if key == "refs":
            return lambda: any(self._ref(item, line, where) for item in items)
        if key == "variables":
            return lambda: any(self.condition(i, line, where, values) for i in items)
        if key == "changes":
            fake = LineMap(line)
            fake.put("changes", items, line)
            return lambda: self.changes(fake, where, VarTable(dict(values)))
        self.reporter.ignore(line, where, "kubernetes")
        return lambda: True

    def _ref(self, item: str, line: int, where: str) -> bool:
        repo = self.repo
        item, _, project = item.partition("@")
        if project and project != repo.project_path:
            return False
        if item in REF_SOURCES:
            return repo.source == REF_SOURCES[item]
        if item == "branches":
            return not repo.is_tag and repo.source != "merge_request_event"
        if item == "tags":
            return repo.is_tag
        if len(item) > 1 and item.startswith("/") and item.rstrip("imsx").endswith("/"):
            try:
                return bool(regex_literal(item).search(repo.ref))
            except ExpressionError as exc:
                self.reporter.fail(line, f"{where}refs {item}: {exc}")
        return item == repo.ref


def _flatten(value: list[Any]) -> list[Any]:
    """Rules lists may nest (`- !reference [.rules, rules]`); GitLab flattens them."""
    out: list[Any] = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out
