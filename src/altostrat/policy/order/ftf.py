"""Finish-time fairness (Themis, Mahajan et al., NSDI'20; the per-job form used by Gavel, OSDI'20).

rho = T_shared / T_isolated, the job's finish time in the shared cluster over its run time
if it had 1/N of the cluster to itself; jobs with the highest rho (treated least fairly so
far) go first. Here, for a job submitted at s with reference duration D needing g GPUs:

    T_shared   = (now - s) + remaining work / speed
    T_isolated = D / v_iso * max(1, g * N / C)

* `remaining work` is engine.remaining (reference seconds left); `speed` is the job's speed
  on the GPU model it runs on, or v_iso while it waits (remaining restart overhead is
  ignored).
* v_iso is the job's best speed over the GPU models in the cluster it may use (1.0 for
  jobs without per-model speeds or without GPUs).
* N is the number of tenants with jobs in the system (pending or running; Themis' apps
  are tenants here) and C the cluster's GPUs; a gang wider than its tenant's fair share
  C/N runs proportionally slower in isolation (time-sharing that share).

While a job runs at v_iso its rho stays constant; while it waits rho grows at 1/T_isolated
per second, so short waiting jobs overtake long ones quickly. Not preemptive; with
`+preempt` running jobs are compared at events only (no wake-up of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register
from altostrat.resources import MILLI

INF = float("inf")


@register(
    "order",
    "ftf",
    "finish-time fairness (Themis, NSDI'20, as used in Gavel, OSDI'20): highest rho = T_shared/T_isolated first",
)
@dataclass(frozen=True)
class FinishTimeFairness:
    dynamic: ClassVar[bool] = True
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (-self.rho(job, engine, now), job.submit)

    def rho(self, job, engine, now) -> float:
        state = engine.state
        iso = isolated_speed(job, state)
        run = engine.running.get(job.idx)
        left = engine.remaining(job, now) / (run.speed if run is not None else iso)
        isolated = job.duration / iso
        gpus = state.gpu_capacity_milli / MILLI
        if job.gpu_milli and gpus:
            fair_share = gpus / max(1, len(engine.tenant_jobs))
            isolated *= max(1.0, job.gpus / fair_share)
        if isolated <= 0:
            return INF  # a zero-length job cannot be treated fairly by waiting
        return (now - job.submit + left) / isolated


def isolated_speed(job, state) -> float:
    if job.speeds is None or not job.gpu_milli:
        return 1.0
    return max((job.speed(m.model) for m in state.candidate_models(job)), default=1.0)
