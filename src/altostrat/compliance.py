"""The compliance risk score R(x) of running a job at a place, in [0, 1].

Residency (a job's allowed regions and jurisdictions) is a hard rule the engine never
breaks; R(x) grades what remains allowed, so that a user can ask for the cheapest place
with R(x) <= rho. It adds the weights of the factors that hold:

* data leaves its jurisdiction: the job reads a dataset held in one jurisdiction and runs
  in another (a cross-border transfer, e.g. under GDPR chapter V);
* unknown jurisdiction: the place's region is not in catalog/regions.py, so nobody can
  say which law applies;
* spot: the capacity can be taken back at a moment's notice (an availability risk);
* shared tenancy: the node also runs other tenants' tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.catalog.regions import jurisdiction
from altostrat.resources import MILLI

RISK_WEIGHTS: dict[str, float] = {
    "data_leaves_jurisdiction": 0.5,
    "unknown_jurisdiction": 0.3,
    "spot": 0.2,
    "shared_tenancy": 0.1,
}


@dataclass(frozen=True, slots=True)
class Place:
    region: str | None
    spot: bool = False
    shared: bool = False  # other tenants' tasks on the same node


def risk_factors(data_region: str | None, place: Place) -> list[str]:
    """The factors of RISK_WEIGHTS that hold for a job whose data lives in `data_region`."""
    here = jurisdiction(place.region)
    factors = []
    if data_region is not None and here != jurisdiction(data_region):
        factors.append("data_leaves_jurisdiction")
    if here is None:
        factors.append("unknown_jurisdiction")
    if place.spot:
        factors.append("spot")
    if place.shared:
        factors.append("shared_tenancy")
    return factors


def risk(data_region: str | None, place: Place) -> float:
    return min(1.0, sum(RISK_WEIGHTS[f] for f in risk_factors(data_region, place)))


def in_use(node) -> bool:
    """Whether a node holds any task now. The cluster state does not record whose tasks run
    where, so this stands in for shared tenancy: it over-counts, taking the job's own tenant
    for another one."""
    return (node.cpu_free != node.cpu_milli or node.mem_free != node.mem_mib
            or sum(node.gpu_free) != node.gpus * MILLI)


def node_risk(job, node) -> float:
    """R(x) of starting one of the job's tasks on the node as it is now."""
    return risk(job.data_region, Place(node.region, node.spot, in_use(node)))


def plan_risk(job, state, plan) -> float:
    """R(x) of a placement before it is applied: the worst of its nodes (a gang is as exposed
    as its most exposed task)."""
    return max((node_risk(job, state.nodes[entry[0]]) for entry in plan), default=0.0)
