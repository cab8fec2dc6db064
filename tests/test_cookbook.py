"""Every cookbook query runs against generated sample data and answers its question."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from conftest import query

COOKBOOK = Path(__file__).resolve().parents[1] / "docs" / "cookbook.md"
QUERIES = re.findall(r"### (.+?)\n.*?```sql\n(.*?)```", COOKBOOK.read_text(), re.S)


def test_the_cookbook_has_at_least_ten_questions():
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("title, sql", QUERIES, ids=[t.split(".")[0] for t, _ in QUERIES])
def test_each_cookbook_query_answers(sample_with_changes, title, sql):
    settings, truth, _ = sample_with_changes
    rows = query(settings, sql)
    assert rows, f"{title}: no rows on the sample data"
    if title.startswith("2."):
        by_scenario = {r[0]: r for r in rows}
        regressed = by_scenario[truth["regression"]["scenario"]]
        assert regressed[1] < regressed[2] - 0.15  # v3 accepted far below what came before
    if title.startswith("14."):  # the emerging failure mode grew in every scenario it appeared in
        emerging = truth["emerging_failure_mode"]
        assert set(emerging["scenarios"]) <= {r[0] for r in rows if r[3] >= date.fromisoformat(emerging["first_date"])}
    if title.startswith("13."):
        assert (truth["regression"]["scenario"], "prompt_version", "v3") in {r[:3] for r in rows}
