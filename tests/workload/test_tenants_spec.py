"""Tenants' budgets from a `kind: Tenants` file (--budgets) or a Workload's spec.tenants."""

import pytest

from altostrat.budgets import DEFAULT_PERIOD_S, TenantBudget, load_budgets
from altostrat.sim.run import RunRequest, run
from altostrat.spec.load import SpecError
from altostrat.workload.sources import WorkloadContext, load_workload

TENANTS = """apiVersion: altostrat/v1
kind: Tenants
metadata: {name: lab}
spec:
  tenants:
"""
WORKLOAD = """apiVersion: altostrat/v1
kind: Workload
metadata: {name: w}
spec:
  jobs:
    - {name: a1, durationS: 100, tenant: research}
    - {name: b1, durationS: 50, tenant: prod}
  tenants:
    - {name: research, budgetUsd: 10, periodS: 3600}
"""


def write(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_tenants_file_gives_budgets_with_defaults(tmp_path):
    path = write(tmp_path, TENANTS + "    - {name: research, budgetUsd: 500, budgetGpuHours: 100, periodS: 86400}\n"
                                     "    - {name: prod, weight: 3}\n")
    assert load_budgets(path) == {
        "research": TenantBudget("research", 500.0, 100.0, 86400.0, 1.0),
        "prod": TenantBudget("prod", None, None, DEFAULT_PERIOD_S, 3.0),
    }
    assert not load_budgets(path)["prod"].limited


@pytest.mark.parametrize(("entries", "expected"), [
    ("    - {name: r, budgetUsd: -1}\n", "spec.tenants[0].budgetUsd: Input should be greater than or equal to 0"),
    ("    - {name: r, periodS: 0}\n", "spec.tenants[0].periodS: Input should be greater than 0"),
    ("    - {name: r, weight: 0}\n", "spec.tenants[0].weight: Input should be greater than 0"),
    ("    - {name: r, budget: 5}\n", "spec.tenants[0].budget: Extra inputs are not permitted"),
    ("    - {name: r}\n    - {name: r}\n", "tenant names must be unique; repeated: r"),
])
def test_bad_tenants_name_the_field(tmp_path, entries, expected):
    with pytest.raises(SpecError) as exc:
        load_budgets(write(tmp_path, TENANTS + entries))
    assert expected in str(exc.value) and "t.yaml" in str(exc.value)


def test_a_workload_yaml_carries_its_tenants(tmp_path):
    ctx = WorkloadContext()
    load_workload(write(tmp_path, WORKLOAD), ctx)
    assert ctx.budgets == {"research": TenantBudget("research", usd=10.0, period_s=3600.0)}


def test_budgets_reach_the_run_and_its_metrics(tmp_path):
    # philly-like node: 8 x P100 at 15.46568 USD/h; a 1-GPU task takes 1/8 of it, so a1's
    # 100 s cost 15.46568 / 8 / 36 = 0.0537 USD, within its 10
    out, _ = run(RunRequest(write(tmp_path, WORKLOAD), "philly-like", "fcfs+budget"))
    per = out["metrics"]["per_tenant"]
    assert per["research"]["cost_usd"] == pytest.approx(15.46568 / 8 * 100 / 3600)
    assert per["research"]["budget_overruns"] == 0 and per["prod"]["budget_overruns"] is None
    assert out["metrics"]["budget_overruns"] == 0


def test_a_budgets_file_overrides_and_must_name_a_tenant_of_the_workload(tmp_path):
    workload = write(tmp_path, WORKLOAD)
    tight = write(tmp_path, TENANTS + "    - {name: research, budgetUsd: 0.01}\n", "b.yaml")
    out, _ = run(RunRequest(workload, "philly-like", "fcfs+budget", budgets=tight))
    assert out["metrics"]["jobs_unschedulable"] == 1 and out["budgets"] == tight
    stranger = write(tmp_path, TENANTS + "    - {name: Research, budgetUsd: 1}\n", "c.yaml")
    with pytest.raises(SpecError, match=r"none of its tenants \(Research\) has a job in --workload"):
        run(RunRequest(workload, "philly-like", "fcfs+budget", budgets=stranger))
