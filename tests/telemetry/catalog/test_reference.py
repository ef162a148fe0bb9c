"""docs/metrics.md is generated from CATALOG, and every family of the spec is in CATALOG.

The spec (`shared/spec/metrics.md`) sits beside the repository. Without it these
tests skip on a developer's machine and fail when `CI` is set: CI must check it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from alloy_runner.telemetry.catalog.instruments import CATALOG, Family, Kind
from alloy_runner.telemetry.catalog.reference import COMMAND, render

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "metrics.md"
# CI keeps a copy of shared/ beside the repository.
SPEC = REPO.parent / "shared" / "spec" / "metrics.md"


def parse_tables(markdown: str) -> list[list[dict[str, str]]]:
    """Return every pipe table in `markdown` as rows keyed by header cell.

    A header cell is lower-cased and loses a trailing parenthesis:
    "labels (closed value sets)" is the key "labels".
    """
    tables: list[list[dict[str, str]]] = []
    lines = markdown.splitlines()
    i = 0
    while i + 1 < len(lines):
        header, separator = lines[i].strip(), lines[i + 1].strip()
        if header.startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", separator):
            names = [
                re.sub(r"\s*\(.*\)$", "", c.strip().lower()) for c in header.strip("|").split("|")
            ]
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(names, cells, strict=True)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def spec_labels(cell: str, families: dict[str, dict[str, str]]) -> set[str]:
    """Read the label names out of a spec "labels" cell.

    The cell lists names in backticks, may follow one with `: values` or
    `(values)`, may say `as <family>`, and is a dash when there are none.
    """
    alias = re.fullmatch(r"as `([^`]+)`", cell)
    if alias:
        return spec_labels(families[alias.group(1)]["labels"], families)
    cell = re.sub(r"\([^)]*\)", "", cell)  # closed value sets in parentheses
    cell = cell.split(":", 1)[0]  # `label`: value, value, ...
    return set(re.findall(r"`([^`]+)`", cell))


def spec_families(text: str) -> dict[str, dict[str, str]]:
    """Return the spec's family rows by the family name as scraped."""
    families: dict[str, dict[str, str]] = {}
    for table in parse_tables(text):
        for row in table:
            first = next(iter(row.values()))
            name = re.fullmatch(r"`([a-z_:][a-z0-9_:]*)`", first)
            if name and "type" in row:
                families[name.group(1)] = row
    return families


def load_spec(path: Path) -> dict[str, dict[str, str]]:
    """Return the spec's families; skip when it is missing, or fail when `CI` is set."""
    if not path.is_file():
        message = f"the metrics spec is not beside the repository at {path}"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI is set, so the spec must be checked")
        pytest.skip(message)
    return spec_families(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def spec() -> dict[str, dict[str, str]]:
    return load_spec(SPEC)


def mismatches(
    name: str, row: dict[str, str], family: Family | None, spec: dict[str, dict[str, str]]
) -> list[str]:
    """Return how the catalog's `family` differs from the spec's `row` for `name`."""
    if family is None:
        return [f"{name}: in the spec, not in CATALOG"]
    problems = []
    spec_type = row["type"].split(",", 1)[0].strip()
    if family.kind.prometheus_type != spec_type:
        problems.append(f"{name}: type {family.kind.prometheus_type}, the spec says {spec_type}")
    labels = spec_labels(row["labels"], spec)
    if set(family.labels) != labels:
        problems.append(f"{name}: labels {sorted(family.labels)}, the spec says {sorted(labels)}")
    if row.get("help") and family.help != row["help"]:
        problems.append(f"{name}: HELP {family.help!r}, the spec says {row['help']!r}")
    return problems


def test_docs_metrics_md_is_the_rendered_catalog() -> None:
    """The committed docs/metrics.md is exactly what reference.render() produces."""
    assert DOC.read_text(encoding="utf-8") == render(), (
        f"docs/metrics.md is out of date with CATALOG; regenerate it with: .venv/bin/{COMMAND}"
    )


def test_every_spec_family_is_in_the_catalog_with_its_type_labels_and_help(
    spec: dict[str, dict[str, str]],
) -> None:
    """Each family the spec lists is in CATALOG with the spec's type, label names and HELP.

    CATALOG may hold families the spec does not list.
    """
    catalog = {f.exposed_name: f for f in CATALOG}
    problems = [
        p for name, row in spec.items() for p in mismatches(name, row, catalog.get(name), spec)
    ]
    assert not problems, "\n".join(problems)
    assert len(spec) >= 30, f"only {len(spec)} families read from {SPEC}: is the parser wrong?"
    assert sum(bool(row.get("help")) for row in spec.values()) >= 20, "HELP columns not read"


def test_a_family_that_differs_from_the_spec_is_reported() -> None:
    """A missing family, or a wrong type, label set or HELP, each give one problem line."""
    spec = {
        "x_total": {"type": "counter", "labels": "`runner`", "help": "Xs."},
        "y": {"type": "gauge, always 1", "labels": "\N{EN DASH}", "help": ""},
    }
    good = Family("x", Kind.COUNTER, "Xs.", ("runner",))
    assert mismatches("x_total", spec["x_total"], good, spec) == []
    assert mismatches("y", spec["y"], Family("y", Kind.GAUGE, "anything"), spec) == []
    assert mismatches("x_total", spec["x_total"], None, spec) == [
        "x_total: in the spec, not in CATALOG"
    ]
    wrong = Family("x", Kind.GAUGE, "Other.", ("runner", "stage"))
    assert len(mismatches("x_total", spec["x_total"], wrong, spec)) == 3


def test_a_missing_spec_fails_under_ci_and_skips_elsewhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the spec file, the check fails when CI is set and skips when it is not."""
    missing = tmp_path / "metrics.md"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        load_spec(missing)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        load_spec(missing)


def test_spec_table_parser_reads_labels_the_way_the_spec_writes_them() -> None:
    """Closed value sets, `as <family>` and a dash are read as the spec means them."""
    families = {"a_total": {"labels": "`type`: `created`, `removed`"}}
    assert spec_labels("`type`: `created`, `removed`", families) == {"type"}
    assert spec_labels("`runner`, `state` (`success`, `failed`)", families) == {"runner", "state"}
    assert spec_labels("as `a_total`", families) == {"type"}
    assert spec_labels("\N{EN DASH}", families) == set()
