"""Live objects as the engine sees them, and a replay of live work in the digital twin.

The reconciler builds its engine's nodes from Pool objects and its jobs from Job objects;
`replay` builds the same from the API's views of a finished run and simulates them with the
same policy, so that the service's start and end times can be set against the twin's: the
proof that both run one engine (docs/service.md, "Fidelity").
"""

from __future__ import annotations

import math

from altostrat.cluster.state import ClusterState, Node
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.sim.eventlog import FINISH, START
from altostrat.sim.simulator import simulate
from altostrat.workload.job import Job, number_jobs


def pool_nodes(pools: dict[str, dict]) -> list[Node]:
    """The nodes of Pool specs (camelCase, as stored), pools in name order, named POOL/INDEX;
    a Pool's pricePerHour is each node's price (queue budgets in USD read it)."""
    nodes: list[Node] = []
    for pool in sorted(pools):
        spec = pools[pool]
        gpu = spec.get("gpu")
        for i in range(spec["nodes"]):
            nodes.append(Node(len(nodes), f"{pool}/{i}", pool, gpu["model"] if gpu else None, gpu["count"] if gpu else 0,
                              round(spec["cpu"] * MILLI), round(spec["memoryGib"] * 1024), region=spec.get("region"),
                              price_per_s=None if spec.get("pricePerHour") is None else spec["pricePerHour"] / 3600))
    return nodes


def live_job(name: str, spec: dict, party: str, submit: float, idx: int, duration: float | None = None) -> Job:
    """The engine's Job for a Job spec submitted at `submit`; it plans with the spec's
    expectedDurationS unless the real `duration` is known (a replay). `party` is its engine
    "tenant", which fair-share orders and budgets account by: the service passes the job's
    Queue (docs/service.md, "Queues")."""
    res = spec["resources"]
    return Job(id=name, submit=submit, duration=spec["expectedDurationS"] if duration is None else duration,
               tasks=spec["tasks"], gpu_milli=round(res["gpu"] * MILLI), cpu_milli=round(res["cpu"] * MILLI),
               mem_mib=round(res["memoryGib"] * 1024), tenant=party, priority=spec["priority"],
               deadline=None if spec.get("deadlineS") is None else submit + spec["deadlineS"], idx=idx)


def replay(jobs: list[dict], pools: list[dict], policy: str, durations: dict[str, float]) -> dict[str, tuple[float, float]]:
    """Job name -> (first start, finish) in the twin, in seconds after the first submission.

    `jobs` and `pools` are the API's views (`GET /v1/jobs`, `GET /v1/pools`); `durations` the
    jobs' true run times (a live job's expectedDurationS is only an estimate). Each job
    arrives at its `metadata.createdAt`, the time the service accepted it.
    """
    t0 = min(j["metadata"]["createdAt"] for j in jobs)
    ordered = sorted(jobs, key=lambda j: (j["metadata"]["createdAt"], j["metadata"]["name"]))
    work = number_jobs([live_job(j["metadata"]["name"], j["spec"], j["spec"]["queue"], j["metadata"]["createdAt"] - t0,
                                 i, durations[j["metadata"]["name"]])
                        for i, j in enumerate(ordered)])
    nodes = pool_nodes({p["metadata"]["name"]: p["spec"] for p in pools})
    result = simulate(work, ClusterState(nodes), parse_policy(policy))
    first, end = {}, {}
    for t, kind, j in zip(result.log.time, result.log.kind, result.log.job):
        if kind == START:
            first.setdefault(j, t)
        elif kind == FINISH:
            end[j] = t
    return {job.id: (first.get(job.idx, math.nan), end.get(job.idx, math.nan)) for job in work}


def live_times(jobs: list[dict]) -> dict[str, tuple[float, float]]:
    """Job name -> (first task start, last task end) of a finished live run, in seconds after
    the first submission: the service's side of the comparison."""
    t0 = min(j["metadata"]["createdAt"] for j in jobs)
    out = {}
    for j in jobs:
        tasks = j["status"]["tasks"]
        out[j["metadata"]["name"]] = (min(t["startedAt"] for t in tasks) - t0, max(t["endedAt"] for t in tasks) - t0)
    return out


def mean_jct_error(live: dict[str, tuple[float, float]], twin: dict[str, tuple[float, float]],
                   submitted: dict[str, float]) -> float:
    """|mean JCT live − mean JCT twin| / mean JCT twin, JCT = end − submission."""
    live_jct = sum(live[n][1] - submitted[n] for n in live) / len(live)
    twin_jct = sum(twin[n][1] - submitted[n] for n in live) / len(live)
    return abs(live_jct - twin_jct) / twin_jct
