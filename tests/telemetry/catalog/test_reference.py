"""docs/metrics.md is generated from CATALOG, and CATALOG agrees with the spec's tables."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from alloy_runner.telemetry.catalog.instruments import CATALOG
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


@pytest.fixture(scope="module")
def spec() -> dict[str, dict[str, str]]:
    if not SPEC.is_file():
        pytest.skip(f"the metrics spec is not beside the repository at {SPEC}")
    return spec_families(SPEC.read_text(encoding="utf-8"))


def test_docs_metrics_md_is_the_rendered_catalog() -> None:
    """The committed docs/metrics.md is exactly what reference.render() produces."""
    assert DOC.read_text(encoding="utf-8") == render(), (
        f"docs/metrics.md is out of date with CATALOG; regenerate it with: .venv/bin/{COMMAND}"
    )


def test_every_catalog_family_is_in_the_spec(spec: dict[str, dict[str, str]]) -> None:
    """Each family in CATALOG appears in a spec table under its scraped name."""
    missing = [f.exposed_name for f in CATALOG if f.exposed_name not in spec]
    assert not missing, f"families in CATALOG but not in {SPEC}: {missing}"


def test_catalog_help_matches_the_spec(spec: dict[str, dict[str, str]]) -> None:
    """Where the spec gives a HELP text, the catalog's HELP is that text exactly."""
    checked = 0
    for family in CATALOG:
        row = spec.get(family.exposed_name, {})
        if row.get("help"):
            assert family.help == row["help"], family.exposed_name
            checked += 1
    assert checked > 0, "no spec table with a HELP column was found"


def test_catalog_type_and_labels_match_the_spec(spec: dict[str, dict[str, str]]) -> None:
    """The Prometheus type and the label names of each family are the spec's."""
    for family in CATALOG:
        row = spec.get(family.exposed_name)
        if row is None:
            continue  # reported by test_every_catalog_family_is_in_the_spec
        spec_type = row["type"].split(",", 1)[0].strip()
        assert family.kind.prometheus_type == spec_type, family.exposed_name
        assert set(family.labels) == spec_labels(row["labels"], spec), family.exposed_name


def test_spec_table_parser_reads_labels_the_way_the_spec_writes_them() -> None:
    """Closed value sets, `as <family>` and a dash are read as the spec means them."""
    families = {"a_total": {"labels": "`type`: `created`, `removed`"}}
    assert spec_labels("`type`: `created`, `removed`", families) == {"type"}
    assert spec_labels("`runner`, `state` (`success`, `failed`)", families) == {"runner", "state"}
    assert spec_labels("as `a_total`", families) == {"type"}
    assert spec_labels("\N{EN DASH}", families) == set()
