"""The embedded default workload: a seeded generator calibrated on published Philly statistics.

Durations and sizes follow Gavel's Philly-derived generator (Narayanan et al., OSDI'20):
run time 60·10^U(1.5,3) s for 80 % of jobs and 60·10^U(3,4) s for the rest; GPUs 1/2/4/8
with probability 0.7/0.1/0.15/0.05; Poisson arrivals. Per-GPU-model speeds are Gavel's
measured single-GPU throughputs (simulation_throughputs.json) relative to a V100.
"""

from __future__ import annotations

import numpy as np

from altostrat.resources import MILLI
from altostrat.workload.job import Job
from altostrat.workload.sources import TraceError, WorkloadContext, parse_options, workload_source

# job type -> throughput relative to V100 on (P100, K80); Gavel simulation_throughputs.json
JOB_TYPES = {
    "ResNet-18 (batch size 64)": (0.926, 0.293),
    "ResNet-50 (batch size 64)": (0.596, 0.141),
    "Transformer (batch size 64)": (0.591, 0.203),
    "LM (batch size 20)": (0.899, 0.265),
    "Recommendation (batch size 2048)": (2.222, 1.398),
    "CycleGAN": (0.543, 0.114),
    "A3C": (0.792, 0.479),
}
GPU_SIZES = (1, 2, 4, 8)
GPU_PROBS = (0.7, 0.1, 0.15, 0.05)
CPU_PER_GPU_MILLI = 4 * MILLI  # documented default host share of one GPU
MEM_PER_GPU_MIB = 32 * 1024

OPTIONS = {
    "jobs": int, "load": float, "seed": int, "tenants": int, "priorities": int,
    "deadlines": float, "slack": float, "spot": float, "checkpoint_s": float,
}


def _speeds(name: str) -> dict[str, float]:
    p100, k80 = JOB_TYPES[name]
    return {"V100": 1.0, "P100": p100, "K80": k80}


@workload_source(
    "synthetic",
    "synthetic[:jobs=N,load=F,seed=S,tenants=T,priorities=P,deadlines=F,slack=X,spot=F,checkpoint_s=C]",
    "seeded Philly-calibrated generator (embedded default; load is relative to --cluster)",
)
def synthetic(arg: str, ctx: WorkloadContext) -> list[Job]:
    opts = {"jobs": 1000, "load": 0.8, "seed": 1, "tenants": 1, "priorities": 1, "deadlines": 0.0, "slack": 3.0,
            "spot": 0.0, "checkpoint_s": 0.0}
    opts.update(parse_options(arg, OPTIONS, "synthetic"))
    if ctx.seed is not None:
        opts["seed"] = ctx.seed
    checks = {
        "jobs": opts["jobs"] >= 1, "load": opts["load"] > 0, "tenants": opts["tenants"] >= 1,
        "priorities": opts["priorities"] >= 1, "deadlines": 0 <= opts["deadlines"] <= 1, "slack": opts["slack"] >= 1,
        "spot": 0 <= opts["spot"] <= 1, "checkpoint_s": opts["checkpoint_s"] >= 0,
    }
    for key, ok in checks.items():
        if not ok:
            raise TraceError(f"synthetic: option {key}={opts[key]} is out of range (jobs, tenants, priorities >= 1; "
                             "load > 0; deadlines and spot in [0, 1]; slack >= 1; checkpoint_s >= 0, 0 for none)")
    return generate(**opts, cluster=ctx.cluster)


def generate(jobs, load, seed, tenants, priorities, deadlines, slack, spot=0.0, checkpoint_s=0.0, cluster=None) -> list[Job]:
    rng = np.random.default_rng(seed)
    n = jobs
    long = rng.random(n) < 0.2
    exponent = np.where(long, rng.uniform(3, 4, n), rng.uniform(1.5, 3, n))
    duration = 60.0 * 10.0**exponent
    gpus = rng.choice(GPU_SIZES, size=n, p=GPU_PROBS)
    types = list(JOB_TYPES)
    type_idx = rng.integers(len(types), size=n)

    capacity, speed_on_cluster = 64 * 8, np.ones(n)  # philly-like when no cluster is given
    if cluster is not None and cluster.gpu_capacity_milli:
        capacity = cluster.gpu_capacity_milli / MILLI
        weights = {m.model: m.capacity for m in cluster.models.values()}
        total = sum(weights.values())
        per_type = [sum(w * _speeds(t).get(m, 1.0) for m, w in weights.items()) / total for t in types]
        speed_on_cluster = np.asarray(per_type)[type_idx]
    # arrival rate that offers `load` x capacity in GPU-seconds of work on this cluster
    offered = float(np.mean(gpus * duration / speed_on_cluster))
    rate = load * capacity / offered
    submit = np.cumsum(rng.exponential(1.0 / rate, n))
    submit -= submit[0]
    tenant = rng.integers(tenants, size=n)
    priority = rng.integers(priorities, size=n)
    has_deadline = rng.random(n) < deadlines
    allows_spot = rng.random(n) < spot  # drawn last: the other draws of a seed stay as they were

    out = []
    for i in range(n):
        g = int(gpus[i])
        out.append(
            Job(
                id=f"job-{i:06d}",
                submit=float(submit[i]),
                duration=float(duration[i]),
                tasks=g,
                gpu_milli=MILLI,
                cpu_milli=CPU_PER_GPU_MILLI,
                mem_mib=MEM_PER_GPU_MIB,
                speeds=_speeds(types[type_idx[i]]),
                tenant=f"tenant-{tenant[i]}",
                priority=int(priority[i]),
                deadline=float(submit[i] + slack * duration[i] / speed_on_cluster[i]) if has_deadline[i] else None,
                job_type=types[type_idx[i]],
                spot=bool(allows_spot[i]),
                checkpoint_s=checkpoint_s or None,
            )
        )
    return out
