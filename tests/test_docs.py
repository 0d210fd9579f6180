"""The docs name everything that is registered, so they cannot silently fall behind the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

import altostrat.cluster.sources  # noqa: F401  (registers the cluster sources)
import altostrat.policy  # noqa: F401  (registers the built-in pieces)
import altostrat.workload.loaders  # noqa: F401  (registers the workload sources)
from altostrat.cluster.build import CLUSTER_SOURCES
from altostrat.policy.registry import KINDS, Backfill, Preemption, Recovery, pieces
from altostrat.workload.sources import WORKLOAD_SOURCES

DOCS = Path(__file__).resolve().parents[1] / "docs"
POLICIES = (DOCS / "policies.md").read_text(encoding="utf-8")
DATA = (DOCS / "data.md").read_text(encoding="utf-8")

# Built-in pieces only: a plugin installed in the environment documents itself.
BUILT_IN = [cls for kind in KINDS for cls in pieces(kind).values()
            if cls.__module__.startswith("altostrat.")]
OPTIONS = {"backfill": Backfill, "preempt": Preemption, "recover": Recovery}


def params(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def shows(cell: str, default: object) -> bool:
    """Whether a table cell such as `3600` or `0 (off)` states `default`."""
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        number = re.match(r"-?[\d.]+", cell)
        return number is not None and float(number.group()) == default
    return cell.strip("`").lower().startswith(str(default).lower())


def section(name: str) -> str:
    """The text under the heading that names `name`, up to the next heading of its level."""
    m = re.search(rf"^(#+) `{re.escape(name)}`.*$", POLICIES, re.M)
    assert m, f"docs/policies.md has no heading for `{name}`; add a section with its parameter table"
    end = re.compile(rf"^#{{1,{len(m.group(1))}}} ", re.M).search(POLICIES, m.end())
    return POLICIES[m.end():end.start() if end else len(POLICIES)]


def test_the_pieces_are_the_ones_expected():
    # guards the checks below against an empty or half-imported registry
    assert {cls.name for cls in BUILT_IN} >= {"fcfs", "sjf", "priority", "edf", "las", "drf", "ftf",
                                              "first-fit", "best-fit", "spread", "consolidate", "fgd", "hetero"}


@pytest.mark.parametrize("cls", BUILT_IN, ids=lambda c: c.name)
def test_every_piece_has_a_table_row(cls):
    assert re.search(rf"^\| `{re.escape(cls.name)}`", POLICIES, re.M), (
        f"docs/policies.md: add a row for {cls.kind} `{cls.name}` to the {cls.kind} table")


@pytest.mark.parametrize(
    ("name", "cls"),
    [*((c.name, c) for c in BUILT_IN if params(c)), *OPTIONS.items()],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_every_parameter_is_documented_with_its_default(name, cls):
    text = section(name)
    for f in params(cls):
        row = re.search(rf"^\| `{f.name}` \| ([^|]+) \|", text, re.M)
        assert row, f"docs/policies.md, section `{name}`: add a row | `{f.name}` | default | meaning |"
        shown = row.group(1).strip()
        assert shows(shown, f.default), (
            f"docs/policies.md, section `{name}`: `{f.name}` defaults to {f.default!r} in the code, "
            f"the docs say {shown!r}")


@pytest.mark.parametrize("name", sorted(WORKLOAD_SOURCES))
def test_every_workload_source_is_in_data_md(name):
    assert re.search(rf"^\| `{re.escape(name)}[:\[`]", DATA, re.M), (
        f"docs/data.md: add `{name}` to the table of workload specs")
    assert re.search(rf"^## {re.escape(name)}\b", DATA, re.M), f"docs/data.md: add a section '## {name}'"


@pytest.mark.parametrize("name", sorted(CLUSTER_SOURCES))
def test_every_cluster_source_is_in_data_md(name):
    assert re.search(rf"^\| `{re.escape(name)}[:`]", DATA, re.M), (
        f"docs/data.md: add `{name}` to the table of built-in clusters")
