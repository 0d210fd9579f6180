"""Queue quotas, cohorts and borrowing, enforced as an engine gate (policy/gate/__init__.py
describes the protocol); and the engine context that carries queue weights and budgets.

The reconciler appends this gate to the parsed policy. A queue outside a cohort holds at most
its quota. Queues naming the same cohort lend each other their unused quota: a queue may hold
up to its quota plus its borrowing limit (none: no cap), as long as the cohort's queues
together hold at most the sum of their quotas. The engine holds a job that would break either
bound now, and rejects one that asks for more than its queue could ever hold. Lenders come
first: while a job waits that would fit within its own queue's quota, no other queue of its
cohort starts borrowed work. Under a policy that preempts, a lender whose quota is lent out
reclaims it: the gate names the borrowed jobs to preempt (`reclaim`); without preemption it
waits until the borrowed work ends (docs/service.md, "Queues"). It is not registered: quotas
are objects of the live service, not a policy choice.
"""

from __future__ import annotations

import dataclasses
import math

from sqlalchemy import Connection, or_, select

from altostrat.budgets import DEFAULT_PERIOD_S, TenantBudget
from altostrat.engine import Engine, PolicyContext, task_share
from altostrat.policy.gate.budget import BudgetGate
from altostrat.policy.registry import Policy
from altostrat.resources import MILLI
from altostrat.service import tables as t
from altostrat.service.store import RUNNING
from altostrat.service.twin import live_job
from altostrat.workload.job import Job

RESOURCES = (("gpu", MILLI), ("cpu", MILLI), ("memoryGib", 1024))  # spec key, units per engine unit
NAMES = {"gpu": "GPUs", "cpu": "CPUs", "memoryGib": "GiB of memory"}


def _amounts(spec: dict | None) -> tuple[float, ...]:
    """Engine units of a quota or borrowing limit; a resource left out is inf."""
    spec = spec or {}
    return tuple(math.inf if spec.get(key) is None else round(spec[key] * unit) for key, unit in RESOURCES)


class QueueQuotaGate:
    def __init__(self, queues: dict[str, dict] | None = None) -> None:
        self.specs: dict[str, dict] = {}  # queue -> its spec (camelCase, as stored)
        self.limits: dict[str, tuple[float, float, float]] = {}  # queue -> quota (gpu milli, cpu milli, MiB); inf = none
        self.borrow: dict[str, tuple[float, float, float]] = {}  # queue -> borrowing limit (inf = none)
        self.cohort_of: dict[str, str | None] = {}
        self.queue_of: dict[int, str] = {}  # job idx -> its queue
        self.used: dict[str, list[int]] = {}
        self.cohort_used: dict[str, list[int]] = {}
        self._events = 0  # starts and stops so far: with the pending count and the time, the key of _lenders' memo
        self._lenders_memo: tuple = (None, {})
        for name, spec in (queues or {}).items():
            self.set_queue(name, spec)

    def set_queue(self, name: str, spec: dict) -> None:
        """A Queue spec (`quota`, `cohort`, `borrowingLimit`; absent keys: none)."""
        self.specs[name] = spec
        self.limits[name] = _amounts(spec.get("quota"))
        self.borrow[name] = _amounts(spec.get("borrowingLimit"))
        self.cohort_of[name] = spec.get("cohort")

    def copy(self) -> QueueQuotaGate:
        """The same queues and jobs, nothing in use (describe's estimate adopts the running jobs)."""
        gate = QueueQuotaGate(self.specs)
        gate.queue_of = dict(self.queue_of)
        return gate

    def cohort_quota(self, cohort: str) -> tuple[float, ...]:
        members = [q for q, c in self.cohort_of.items() if c == cohort]
        return tuple(sum(self.limits[q][i] for q in members) for i in range(len(RESOURCES)))

    def cap(self, queue: str) -> tuple[float, ...]:
        """The most the queue may ever hold: its quota, plus what it may borrow."""
        cohort = self.cohort_of[queue]
        if cohort is None:
            return self.limits[queue]
        return tuple(min(q + b, c) for q, b, c in zip(self.limits[queue], self.borrow[queue], self.cohort_quota(cohort)))

    @staticmethod
    def _ask(job: Job) -> tuple[int, int, int]:
        return job.gpu_milli_total, job.cpu_milli * job.tasks, job.mem_mib * job.tasks

    def refuse(self, job: Job, engine) -> str | None:
        queue = self.queue_of[job.idx]
        cap = self.cap(queue)
        over = [f"{key} {ask / unit:g} > {limit / unit:g}" for (key, unit), ask, limit
                in zip(RESOURCES, self._ask(job), cap) if ask > limit]
        if not over:
            return None
        if self.cohort_of[queue] is None:
            return f"asks for more than queue {queue}'s quota ({', '.join(over)})"
        return (f"asks for more than queue {queue} may ever hold with what it borrows from cohort "
                f"{self.cohort_of[queue]} ({', '.join(over)})")

    def hold(self, job: Job, engine, now: float) -> float | None:
        # a stop in the queue or its cohort, or a lender's start (events) is what can release it
        return math.inf if self.blocked(job, engine, now, explain=False) else None

    def _fits_own(self, queue: str, ask: tuple[int, int, int]) -> bool:
        used = self.used.get(queue, (0, 0, 0))
        return all(u + a <= q for u, a, q in zip(used, ask, self.limits[queue]))

    def _lenders(self, engine, now: float) -> dict[str, str]:
        """Cohort -> a queue of it with a pending job that would fit within that queue's own quota."""
        key = (self._events, len(engine.pending), now)
        if self._lenders_memo[0] != key:
            found: dict[str, str] = {}
            for job in engine.pending.values():
                queue = self.queue_of[job.idx]
                cohort = self.cohort_of[queue]
                if cohort is not None and cohort not in found and self._fits_own(queue, self._ask(job)):
                    found[cohort] = queue
            self._lenders_memo = (key, found)
        return self._lenders_memo[1]

    def blocked(self, job: Job, engine=None, now: float = 0.0, explain: bool = True) -> str | None:
        """Why the job's start would take its queue or cohort past a bound now, or borrow while a
        lender waits (that needs `engine`); None: it may start. Without `explain` the reason
        may be shorter (the engine's hold only asks whether)."""
        queue = self.queue_of[job.idx]
        cohort = self.cohort_of[queue]
        used = self.used.get(queue, (0, 0, 0))
        in_cohort = self.cohort_used.get(cohort, (0, 0, 0)) if cohort is not None else None
        total = self.cohort_quota(cohort) if cohort is not None else None
        for i, ((key, unit), ask) in enumerate(zip(RESOURCES, self._ask(job))):
            if not ask:
                continue
            name, u, quota = NAMES[key], used[i], self.limits[queue][i]

            def show(x: float) -> str:
                return f"{x / unit:g}"

            uses = f"queue {queue} uses {show(u)}/{show(quota)} {name}"
            asks = f"the job asks {show(ask)} more"
            if cohort is None:
                if u + ask > quota:
                    return f"{uses} and {asks} (no cohort to borrow from)"
                continue
            if u + ask > quota + self.borrow[queue][i]:
                return (f"{uses} and {asks}: its borrowing limit is {show(self.borrow[queue][i])} beyond its quota "
                        f"(cohort {cohort})")
            if in_cohort[i] + ask > total[i]:
                lend = max(0.0, total[i] - in_cohort[i])
                borrowers = sorted(q for q, c in self.cohort_of.items()
                                   if c == cohort and self.used.get(q, (0, 0, 0))[i] > self.limits[q][i])
                lent = "; ".join(f"queue {q} borrows {show(self.used[q][i] - self.limits[q][i])}" for q in borrowers)
                why = f"{uses}; cohort {cohort} has {show(lend)} {name} to lend ({show(in_cohort[i])}/" \
                      f"{show(total[i])} in use{': ' + lent if lent else ''}) and {asks}"
                if u + ask <= quota and explain:  # within its own quota: its quota is lent out
                    why += self._reclaim_note(job, engine, now)
                return why
        if cohort is not None and engine is not None and not self._fits_own(queue, self._ask(job)):
            lender = self._lenders(engine, now).get(cohort)
            if lender is not None and lender != queue:
                return (f"queue {queue} would borrow from cohort {cohort}, but queue {lender} has a job waiting "
                        "within its own quota: lenders start first")
        return None

    def _reclaim_note(self, job: Job, engine, now: float) -> str:
        """What happens to a job whose own quota is lent out: a reclaim, or a wait."""
        if engine is None or engine.policy.preemption is None:
            return "; it waits for the borrowed work to end (the policy does not preempt: no reclaim)"
        victims = self.reclaim(job, engine, now)
        if not victims:
            return ("; it waits for the borrowed work to end (too little of it runs wholly beyond its queue's "
                    "quota to reclaim)")
        queues = sorted({self.queue_of[run.job.idx] for run in victims})
        return (f"; reclaim under way: {len(victims)} borrowed job(s) of queue{'s' * (len(queues) > 1)} "
                f"{', '.join(queues)} are preempted for it once it can start in their place, at its turn in the "
                "policy's order")

    def reclaim(self, job: Job, engine, now: float) -> list:
        """The borrowed jobs to preempt so that `job` may start, when it fits within its own
        queue's quota but its cohort has too little left to lend (docs/service.md, "Queues").

        Candidates are the running jobs of the cohort's other queues, lowest priority then
        newest first. One is taken only if its queue, without it (and those taken before it),
        still holds at least its quota of each resource the job still lacks that it uses: it
        runs wholly beyond its queue's quota there, so a job running even partly within its own
        queue's quota is never taken. Taking stops as soon as the cohort can lend what the job
        asks; [] when the candidates cannot make it so.
        """
        queue = self.queue_of[job.idx]
        cohort = self.cohort_of[queue]
        ask = self._ask(job)
        if cohort is None or not self._fits_own(queue, ask):
            return []
        total = self.cohort_quota(cohort)
        in_cohort = list(self.cohort_used.get(cohort, (0, 0, 0)))

        def lacking() -> list[int]:
            return [i for i in range(len(RESOURCES)) if in_cohort[i] + ask[i] > total[i]]

        short = lacking()
        if not short:
            return []
        used = {q: list(self.used.get(q, (0, 0, 0))) for q, c in self.cohort_of.items() if c == cohort and q != queue}
        borrowing = {q for q, u in used.items() if any(x > limit for x, limit in zip(u, self.limits[q]))}
        runs = sorted((run for run in engine.running.values() if self.queue_of.get(run.job.idx) in borrowing),
                      key=lambda run: (run.job.priority, -run.start, -run.job.idx))
        victims = []
        for run in runs:
            q, their = self.queue_of[run.job.idx], self._ask(run.job)
            uses = [i for i in short if their[i]]
            if uses and all(used[q][i] - their[i] >= self.limits[q][i] for i in uses):
                victims.append(run)
                for i, a in enumerate(their):
                    used[q][i] -= a
                    in_cohort[i] -= a
                short = lacking()
                if not short:
                    return victims
        return []

    def started(self, job: Job, run, engine, now: float) -> None:
        self._add(job, +1)

    def stopped(self, job: Job, run, engine, now: float) -> None:
        self._add(job, -1)

    def _add(self, job: Job, sign: int) -> None:
        self._events += 1
        queue = self.queue_of[job.idx]
        books = [self.used.setdefault(queue, [0, 0, 0])]
        if self.cohort_of[queue] is not None:
            books.append(self.cohort_used.setdefault(self.cohort_of[queue], [0, 0, 0]))
        for i, a in enumerate(self._ask(job)):
            for book in books:
                book[i] += sign * a


def queue_context(queues: dict[str, dict], wall0: float) -> PolicyContext:
    """The engine's view of queue weights and budgets: each Queue is a fair-share party (the
    engine's "tenant", see twin.live_job) with its weight and budget, a period starting at a
    multiple of its periodS in Unix time (engine time 0 is Unix time `wall0`)."""
    budgets = {}
    for name, spec in queues.items():
        budget = spec.get("budget") or {}
        period = budget.get("periodS") or DEFAULT_PERIOD_S
        budgets[name] = TenantBudget(name, budget.get("usd"), budget.get("gpuHours"), period,
                                     spec.get("weight", 1.0), origin=-(wall0 % period))
    return PolicyContext(budgets=budgets)


def queue_policy(policy: Policy, gate: QueueQuotaGate, queues: dict[str, dict]) -> Policy:
    """The policy the service runs: its gates, the `budget` gate when a Queue has a budget (and
    only then: naming it in --policy adds nothing), and the quota gate last."""
    gates = [g for g in policy.gates if not isinstance(g, BudgetGate)]
    if any(spec.get("budget") for spec in queues.values()):
        gates.append(BudgetGate())
    return dataclasses.replace(policy, gates=(*gates, gate))


def book_past_runs(engine: Engine, conn: Connection, wall0: float, wall: float) -> None:
    """Book in the engine's budget gate what the tasks of ended attempts (and of attempts still
    stopping) spent in their queue's current budget period, so that a restart or a rebuilt
    engine forgets nothing. The current attempt of a RUNNING job is left out: the engine adopts
    it and commits it as a start. A task is priced at its Pool's pricePerHour now (a Pool since
    deleted: 0)."""
    budget = next((g for g in engine.gates if isinstance(g, BudgetGate)), None)
    if budget is None:
        return
    since = {}  # queue -> Unix time its current period began
    for queue, b in (engine.context.budgets or {}).items():
        if b.limited:
            since[queue] = wall0 + b.origin + math.floor((wall - wall0 - b.origin) / b.period_s) * b.period_s
    if not since:
        return
    a = t.attempts.c
    rows = conn.execute(select(a.attempt, a.node, a.started_at, a.ended_at, t.objects.c.spec, t.objects.c.state,
                               t.objects.c.status)
                        .join(t.objects, a.job_id == t.objects.c.id)
                        .where(a.started_at.is_not(None), or_(a.ended_at.is_(None), a.ended_at >= min(since.values()))))
    nodes = {n.name: n for n in engine.state.nodes}
    for row in rows.mappings():
        queue = row["spec"]["queue"]
        if queue not in since or (row["state"] == RUNNING and row["attempt"] == row["status"].get("attempts")):
            continue
        job = live_job("", row["spec"], queue, 0.0, -1)
        node = nodes.get(row["node"])
        usd = node.price_per_s * task_share(node, job) if node is not None and node.price_per_s else 0.0
        end = wall if row["ended_at"] is None else row["ended_at"]
        budget.charge(queue, row["started_at"] - wall0, end - wall0, usd, job.gpu_milli / MILLI / 3600)
