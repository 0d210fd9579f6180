"""How `altostrat describe queue|pool|service NAME` prints the API's answer (describe_objects.py)
as a block of `Field:     value` lines and tables, as `describe job` does (cli._description)."""

from __future__ import annotations

from collections.abc import Callable

from altostrat.service.text import table, when


def _amounts(a: dict) -> str:
    return f"{a['gpu']:g} GPU, {a['cpu']:g} CPU, {a['memoryGib']:g} GiB"


def _limits(spec: dict | None, none: str) -> str:
    """A quota or borrowing limit as `get queues` shows it (gpu=4,cpu=8); `none` when it sets nothing."""
    return ",".join(f"{k}={v:g}" for k, v in (spec or {}).items() if v is not None) or none


def queue_text(d: dict) -> str:
    spec = d["spec"]
    lines = [f"Name:      {d['name']}", f"Tenant:    {d['tenant']}", f"Weight:    {spec['weight']:g}",
             f"Quota:     {_limits(spec['quota'], 'none')}", f"Used:      {_amounts(d['used'])}"]
    cohort = d["cohort"]
    if cohort is None:
        lines.append("Cohort:    none")
    else:
        cap = _limits(spec["borrowingLimit"], "none (no cap)")
        lines.append(f"Cohort:    {cohort['name']}: borrowing limit {cap}; borrowed now {_amounts(d['borrowed'])}")
        lines.append(f"           the cohort's queues use {_amounts(cohort['used'])} of "
                     f"{_limits(cohort['quota'], 'no limit')}")
    budget, use = spec["budget"], d["budget"]
    if budget is None:
        lines.append("Budget:    none")
    else:
        limits = ", ".join(f"{v:g} {unit}" for v, unit in ((budget["usd"], "USD"), (budget["gpuHours"], "GPU-hours"))
                           if v is not None)
        lines.append(f"Budget:    {limits} per {budget['periodS']:g} s; spent {use['spentUsd']:.2f} USD, "
                     f"{use['spentGpuHours']:.3g} GPU-hours this period (it renews {when(use['periodEnd'])} UTC)")
    lines.append(f"Jobs:      {d['running']} running, {d['pending']} pending")
    rows = [{"#": str(i), "NAME": j["name"], "REASON": j["reason"], "MESSAGE": j["message"]}
            for i, j in enumerate(d["pendingJobs"])]
    if rows:
        lines += ["Pending, in the engine's order:", table(rows)]
    return "\n".join(lines)


def pool_text(d: dict) -> str:
    spec, gpu = d["spec"], d["spec"]["gpu"]
    shape = ([f"{gpu['count']} x {gpu['model']}"] if gpu else []) + [f"{spec['cpu']:g} CPU, {spec['memoryGib']:g} GiB"]
    if spec["region"]:
        shape.append(f"region {spec['region']}")
    if spec["pricePerHour"] is not None:
        shape.append(f"{spec['pricePerHour']:g} USD/h")
    utilization = ([f"GPU {d['gpuUtilization']:g} %"] if d["gpuUtilization"] is not None else []) + \
        [f"CPU {d['cpuUtilization']:g} %"]
    lines = [f"Name:      {d['name']}", f"Nodes:     {len(d['nodes'])}, each {', '.join(shape)}",
             f"Capacity:  {_amounts(d['capacity'])}",
             f"Allocated: {_amounts(d['allocated'])} ({', '.join(utilization)})", "Per node:"]

    def used(node: dict, key: str) -> str:
        return f"{node['allocated'][key]:g}/{node['capacity'][key]:g}"
    lines.append(table([{"NODE": n["name"], "GPU": used(n, "gpu"), "CPU": used(n, "cpu"),
                          "MEMORY_GIB": used(n, "memoryGib"), "DEVICES": ",".join(map(str, n["devices"])) or "-",
                          "TASKS": str(n["tasks"])} for n in d["nodes"]]))
    rows = [{"NAME": j["name"], "QUEUE": j["queue"], "STATE": j["state"],
             "TASKS": " ".join(f"{t['node']}[{t['devices'] or '-'}]" for t in j["tasks"])} for j in d["jobs"]]
    lines += ["Jobs:", table(rows) if rows else "none"]
    return "\n".join(lines)


def service_text(d: dict) -> str:
    spec = d["spec"]
    desired = "?" if d["desired"] is None else str(d["desired"])
    lines = [f"Name:      {d['name']}", f"Queue:     {spec['queue']} (tenant {d['tenant']})",
             f"Replicas:  {d['ready']} ready, {d['replicas']} active, {desired} desired "
             f"({spec['minReplicas']} to {spec['maxReplicas']}), {d['terminating']} terminating",
             "Load:      " + ("none reported" if d["load"] is None else
                              f"{d['load']:g}, reported {when(d['loadReportedAt'])} UTC")
             + f" ({spec['targetLoad']:g} per replica)"]
    if d["lastScaleTime"] is not None:
        lines.append(f"Scaled:    {when(d['lastScaleTime'])} UTC")
    restarts = f"Restarts:  {d['restarts']}"
    if d["quickExits"]:
        restarts += (f"; crash loop: {d['quickExits']} replica(s) in a row ended soon after their start, "
                     f"the next not before {when(d['nextRestartAt'])} UTC")
    lines.append(restarts)
    if d["reason"]:
        lines.append(f"Reason:    {d['reason']}")
    last = d["lastExit"]
    if last is not None:
        code = "" if last["exitCode"] is None else f", exit code {last['exitCode']}"
        lines.append(f"Last exit: {last['replica']} {last['state']}{code} at {when(last['at'])} UTC"
                     + (f": {last['reason']}" if last["reason"] else ""))
    rows = [{"NAME": r["name"], "STATE": r["state"], "ATTEMPTS": str(r["attempts"]),
             "EXIT": "" if r["exitCode"] is None else str(r["exitCode"]), "NODES": ",".join(r["nodes"]) or "-",
             "STARTED": when(r["startedAt"]), "ENDED": when(r["finishedAt"]),
             "REASON": r["stopReason"] or r["reason"] or ""} for r in d["replicaJobs"]]
    lines += ["Replica jobs:", table(rows) if rows else "none"]
    return "\n".join(lines)


RENDER: dict[str, Callable[[dict], str]] = {"Queue": queue_text, "Pool": pool_text, "Service": service_text}
