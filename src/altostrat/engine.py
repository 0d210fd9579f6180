"""The decision engine shared by the simulator and the control plane.

Given an event (a job submitted, a job finished, a wake-up) and the time as an argument,
it updates the cluster state and returns decisions: start a job on nodes, preempt a
running job, or reject one that can never fit. It never sleeps, reads a clock or does
I/O, which is what lets the simulator and the live service call the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from sortedcontainers import SortedList

from altostrat.autoscale import nodes_to_boot
from altostrat.budgets import TenantBudget
from altostrat.cluster.state import Alloc, ClusterState, Node, allowed_on, is_empty
from altostrat.policy.registry import Policy
from altostrat.recovery import restart_rule
from altostrat.resources import MILLI
from altostrat.workload.job import Job

START, PREEMPT, REJECT, BOOT = "start", "preempt", "reject", "boot"
REVOKED = "revoked"  # a PREEMPT's reason when the job's spot node was taken back
RECLAIMED = "reclaimed"  # a PREEMPT's reason when a gate took back what the job held (a lender's quota)


@dataclass(frozen=True)
class PolicyContext:
    """What a run tells the pieces that take it (`bind`): the calendar, the grid, the network.

    `carbon` is a catalog.carbon.CarbonModel (its `start` maps time 0 to a date-time);
    `transfer_s(job, node)` is the seconds a start on `node` first spends moving the job's
    data there (None: data never moves); `egress_usd(job, node)` what that move costs
    (catalog/network.py), for placements that weigh it; `budgets` maps a tenant to its budget
    and weight (None: no tenant has one).
    """

    carbon: object | None = None
    transfer_s: Callable[[Job, Node], float] | None = None
    egress_usd: Callable[[Job, Node], float] | None = None
    budgets: dict[str, TenantBudget] | None = None


@dataclass(slots=True, frozen=True)
class Decision:
    kind: str  # START, PREEMPT, REJECT, or BOOT (an elastic node, for `job`)
    job: Job
    reason: str = ""
    node: Node | None = None  # BOOT's node


@dataclass(slots=True)
class Run:
    """A job's current attempt: where it runs and when it is expected to end."""

    job: Job
    alloc: Alloc
    start: float
    speed: float
    overhead: float  # restart seconds paid before work resumes
    work_left: float  # reference-speed seconds of work left at `start`
    model: str | None = None  # the GPU model the whole gang runs on

    @property
    def end(self) -> float:
        return self.start + self.overhead + self.work_left / self.speed

    def work_done(self, now: float) -> float:
        return max(0.0, now - self.start - self.overhead) * self.speed


class Engine:
    def __init__(self, state: ClusterState, policy: Policy, context: PolicyContext | None = None) -> None:
        self.state = state
        self.policy = policy
        self.context = context or PolicyContext()
        for piece in policy.pieces():
            bind = getattr(piece, "bind", None)
            if bind is not None:
                bind(self.context)
        self.order = policy.order
        self.placement = policy.placement
        self.dynamic = policy.order.dynamic
        self.gates = policy.gates
        # gates and orders that keep accounts (budget, cost-fair) hear of every start and stop
        keepers = (policy.order, *self.gates)
        self._on_started = [p.started for p in keepers if hasattr(p, "started")]
        self._on_stopped = [p.stopped for p in keepers if hasattr(p, "stopped")]
        self._refusals = [g.refuse for g in self.gates if hasattr(g, "refuse")]
        # gates that may name running jobs to preempt for a job they hold: only when the policy preempts
        self._reclaims = policy.preemption is not None and any(hasattr(g, "reclaim") for g in self.gates)
        self._no_reclaim: tuple[tuple, set[int]] = ((), set())  # ((state version, wake-ups), jobs whose reclaim failed)
        self._release_at = math.inf  # earliest time a gate asked to look again
        # optional order hooks, for orders that keep their own view of the queue (DRF)
        self._on_enqueue = getattr(policy.order, "enqueued", None)
        self._on_dequeue = getattr(policy.order, "dequeued", None)
        self.pending: dict[int, Job] = {}
        self._queue = SortedList()  # (key, idx) for orders whose keys never change
        self._keys: dict[int, tuple] = {}
        self.running: dict[int, Run] = {}
        self.work_left: dict[int, float] = {}  # reference seconds left, for jobs not running
        self.attained: dict[int, float] = {}  # GPU-seconds of service received in past attempts
        self.overhead_due: dict[int, float] = {}
        self.tenant_alloc: dict[str, list[int]] = {}  # tenant -> [gpu milli, cpu milli, mem MiB]
        self.tenant_jobs: dict[str, int] = {}  # tenant -> its jobs pending or running (FTF's N)
        self.last_run: dict[int, tuple[float, float]] = {}  # preempted job -> (stopped at, seconds it ran)
        self.revocations: dict[int, int] = {}  # job -> times a revocation stopped it
        # elastic capacity: nodes booting, nodes revoked and not yet back, elastic nodes that
        # became empty since the driver last asked (it starts their idle timers)
        self.booting: set[int] = set()
        self.unavailable: set[int] = set()
        self.emptied: list[Node] = []
        self._scaled_at: tuple | None = None  # (state version, pending count) of the last scale-up look
        self.unplaced: list[Job] = []  # jobs the last pass looked at and could not start
        self._wakeups = 0
        self._cpu_only_pending = 0  # pending jobs that need no GPU (they can backfill a full GPU cluster)
        self._no_room: tuple | None = None  # (job, state version, wake-ups) of the last failed preemption

    # -- events ---------------------------------------------------------------------------
    def submit(self, job: Job, now: float) -> list[Decision]:
        why = self.state.never_fits(job)
        if why is None and self._refusals:  # a gate that would hold it forever (a budget it can never fit)
            why = next(filter(None, (refuse(job, self) for refuse in self._refusals)), None)
        if why is not None:
            return [Decision(REJECT, job, why)]
        self.work_left[job.idx] = job.duration
        self.tenant_jobs[job.tenant] = self.tenant_jobs.get(job.tenant, 0) + 1
        self._enqueue(job, now)
        return self.schedule(now)

    def finish(self, job: Job, now: float) -> list[Decision]:
        run = self.running.pop(job.idx)
        self._stop(run, now)
        self.work_left.pop(job.idx, None)
        self._drop_tenant_job(job)
        return self.schedule(now)

    def withdraw(self, job: Job, now: float) -> list[Decision]:
        """The job leaves the engine (cancelled, or its spec changed): stop it if it runs, else
        take it off the queue."""
        if job.idx in self.running:
            return self.finish(job, now)
        self._dequeue(job)
        self.work_left.pop(job.idx, None)
        self._drop_tenant_job(job)
        return self.schedule(now)

    def adopt(self, job: Job, alloc: Alloc, start: float) -> None:
        """Take in a job that already runs on exactly `alloc` since `start` (the control plane
        rebuilding its engine when pools change); it ends with `finish` as if started here."""
        self.state.restore(job, alloc)
        self.work_left[job.idx] = job.duration
        self.tenant_jobs[job.tenant] = self.tenant_jobs.get(job.tenant, 0) + 1
        model = self.state.nodes[alloc[0][0]].gpu_model
        run = Run(job, alloc, start, job.speed(model), 0.0, job.duration, model)
        self.running[job.idx] = run
        self._account(run, start, +1)
        for hook in self._on_started:
            hook(job, run, self, start)

    def _drop_tenant_job(self, job: Job) -> None:
        if self.tenant_jobs[job.tenant] > 1:
            self.tenant_jobs[job.tenant] -= 1
        else:
            del self.tenant_jobs[job.tenant]

    def wakeup(self, now: float) -> list[Decision]:
        self._wakeups += 1  # order keys may have moved: preemption is worth another look
        return self.schedule(now)

    def revoke(self, node: Node, now: float) -> list[Decision]:
        """The cloud takes a spot node back: stop its jobs (they lose work since their last
        checkpoint), take it out of service, and re-place them under the recovery strategy."""
        self.state.take_down(node)
        self.unavailable.add(node.idx)
        victims = [run for run in self.running.values() if any(idx == node.idx for idx, _ in run.alloc)]
        decisions = []
        for run in victims:
            job = run.job
            self._preempt(run, now, lost=True)
            recovery = self.policy.recovery
            self.overhead_due[job.idx] = recovery.restart_s
            self.revocations[job.idx] = self.revocations.get(job.idx, 0) + 1
            rule = restart_rule(recovery.strategy, node, job, self.work_left[job.idx], now, recovery.restart_s)
            if rule is not None and any(rule(n) and allowed_on(n, job) for n in self.state.nodes):
                self.state.restrict[job.idx] = rule  # else the strategy has nowhere to go: anywhere allowed
            self._enqueue(job, now)
            decisions.append(Decision(PREEMPT, job, REVOKED))
        return decisions + self.schedule(now)

    def cordon(self, node: Node) -> None:
        """A revocation notice: place nothing new on the node (nor boot it); what runs there runs on."""
        self.state.take_down(node)
        self.unavailable.add(node.idx)

    def node_back(self, node: Node, now: float) -> list[Decision]:
        """A node comes into service: back from a revocation, or booted by the autoscaler."""
        self.unavailable.discard(node.idx)
        self.booting.discard(node.idx)
        self.state.bring_up(node)
        if node.elastic:
            self.emptied.append(node)  # booted for a job that may have started elsewhere meanwhile
        return self.schedule(now)

    def node_available(self, node: Node, now: float) -> list[Decision]:
        """A revoked elastic node may be booted again (it stays down until needed)."""
        self.unavailable.discard(node.idx)
        return self.schedule(now)

    def scale_down(self, node: Node) -> bool:
        """Release an empty elastic node; False (and nothing done) if it is busy, or while any
        node boots: what boots may be the rest of a gang this node is waiting to host."""
        if not node.up or self.booting or not is_empty(node):
            return False
        self.state.take_down(node)
        return True

    def next_wakeup(self, now: float) -> float | None:
        """When the order's keys next change on their own, or a gate asked to look again
        (None: only events matter)."""
        hook = getattr(self.order, "wakeup", None)
        wake = hook(self, now) if hook and self.pending else None
        if self._release_at < math.inf and self.pending:
            wake = self._release_at if wake is None else min(wake, self._release_at)
        return wake

    def run_cost_rate(self, run: Run) -> float:
        """USD per second the run's share of its nodes costs: each task pays its node's price
        times its dominant share of the node (GPU, CPU or memory)."""
        job, nodes, rate = run.job, self.state.nodes, 0.0
        for idx, _ in run.alloc:
            node = nodes[idx]
            if node.price_per_s:
                rate += node.price_per_s * task_share(node, job)
        return rate

    # -- views policies read --------------------------------------------------------------
    def attained_service(self, job: Job, now: float) -> float:
        """GPU-seconds the job has run so far (its LAS priority); restart overhead excluded."""
        total = self.attained.get(job.idx, 0.0)
        run = self.running.get(job.idx)
        if run is not None:
            total += max(0.0, now - run.start - run.overhead) * job.gpus
        return total

    def remaining(self, job: Job, now: float) -> float:
        """Reference-speed seconds of work the job still needs."""
        run = self.running.get(job.idx)
        if run is not None:
            return max(0.0, run.work_left - run.work_done(now))
        return self.work_left.get(job.idx, job.duration)

    def queue(self, now: float) -> list[Job]:
        """The pending jobs in the order the next pass looks at them (the control plane's describe)."""
        return list(self._ordered(now))

    # -- the scheduling pass --------------------------------------------------------------
    def schedule(self, now: float) -> list[Decision]:
        if not self.pending:
            return []
        self.state.now = now
        decisions = self._pass(now)
        if self.state.elastic and self.pending:
            decisions += self._scale_up(now)
        return decisions

    def _scale_up(self, now: float) -> list[Decision]:
        look = (self.state.version, len(self.pending), len(self.booting), len(self.unavailable))
        if look == self._scaled_at:
            return []  # nothing changed that could change the estimate
        self._scaled_at = look
        boots = []
        for node, job in nodes_to_boot(self, now):
            self.booting.add(node.idx)
            boots.append(Decision(BOOT, job, node=node))
        return boots

    def _pass(self, now: float) -> list[Decision]:
        decisions: list[Decision] = []
        started: list[Job] = []
        backfill = self.policy.backfill
        reservation = None  # (shadow time, spare GPU milli) protecting the blocked head
        gates = self.gates
        self._release_at = math.inf
        self.unplaced = unplaced = []  # looked at and not started: what the autoscaler boots for first
        for seen, job in enumerate(self._ordered(now)):
            if backfill and seen >= backfill.depth:
                break
            if gates and self._held(job, now):
                plan = self._reclaims and reservation is None and self._reclaim(job, now, decisions, started)
                if plan:
                    self._start(job, plan, now)
                    started.append(job)
                    decisions.append(Decision(START, job))
                continue
            if reservation is not None:
                if self.state.gpu_allocated_milli == self.state.gpu_capacity_milli and not self._cpu_only_pending:
                    break  # nothing left to backfill into
                if not self._may_backfill(job, now, reservation):
                    unplaced.append(job)
                    continue  # cheap bounds first: most of a long queue is skipped without placing
            plan = self.placement.place(job, self.state)
            if plan is None and reservation is None and self.policy.preemption:
                plan = self._make_room(job, now, decisions, started)
            if plan is not None and reservation is not None:
                plan = self._backfill_allows(job, plan, now, reservation)
            if plan is not None:
                self._start(job, plan, now)
                started.append(job)
                decisions.append(Decision(START, job))
                continue
            unplaced.append(job)
            if backfill is None:
                break
            if reservation is None:
                reservation = self._reserve(job, now)
        for job in started:
            self._dequeue(job)
        for d in decisions:  # queued after the pass: the queue must not change under it
            if d.kind == PREEMPT:
                self._enqueue(d.job, now)
        return decisions

    def _held(self, job: Job, now: float) -> bool:
        for gate in self.gates:
            until = gate.hold(job, self, now)
            if until is not None:
                if now < until < self._release_at:
                    self._release_at = until
                return True
        return False

    def _ordered(self, now: float):
        if not self.dynamic:
            return (self.pending[idx] for _, idx in self._queue)
        ordered = getattr(self.order, "ordered", None)
        if ordered is not None:  # the next choice depends on the jobs this pass started (DRF)
            return ordered(self, now)
        key = self.order.key
        return iter(sorted(self.pending.values(), key=lambda j: (key(j, self, now), j.idx)))

    # -- EASY backfilling -----------------------------------------------------------------
    def _reserve(self, head: Job, now: float) -> list[float]:
        """Shadow time when the head could start, and the GPU milli spare at that time.

        GPUs are counted per model the head may use, not per node: an approximation that
        ignores node shapes, as EASY implementations over node counts do.
        """
        models = {m.model for m in self.state.candidate_models(head)} if head.gpu_milli else set()
        free = sum(self.state.models[m].free_milli for m in models)
        need = head.gpu_milli_total
        ends = sorted(
            (run.end, self._milli_on(run, models)) for run in self.running.values()
        )
        shadow = now
        for end, milli in ends:
            if free >= need:
                break
            free += milli
            shadow = end
        if free < need:
            return [float("inf"), 0.0]
        return [shadow, float(free - need)]

    @staticmethod
    def _milli_on(run: Run, models: set) -> int:
        """GPU milli the run holds on the given models (a gang sits on one model)."""
        return run.job.gpu_milli_total if run.model in models else 0

    def _may_backfill(self, job: Job, now: float, reservation: list[float]) -> bool:
        """Optimistic test before placing: enough GPUs free anywhere, and the job could end
        before the shadow time at its best speed or fits in the spare GPUs."""
        state = self.state
        if job.gpu_milli_total > state.gpu_capacity_milli - state.gpu_allocated_milli:
            return False
        if job.gpu_milli_total <= reservation[1]:
            return True
        best = max(job.speeds.values(), default=1.0) if job.speeds else 1.0
        return now + self.overhead_due.get(job.idx, 0.0) + self.work_left[job.idx] / max(best, 1.0) <= reservation[0]

    def _backfill_allows(self, job: Job, plan, now: float, reservation: list[float]):
        shadow, spare = reservation
        speed = job.speed(self.state.nodes[plan[0][0]].gpu_model)
        end = now + self.overhead_due.get(job.idx, 0.0) + self.work_left[job.idx] / speed
        if end <= shadow:
            return plan
        if job.gpu_milli_total <= spare:
            reservation[1] = spare - job.gpu_milli_total
            return plan
        return None

    # -- preemption -----------------------------------------------------------------------
    def _make_room(self, job: Job, now: float, decisions: list[Decision], started: list[Job]):
        """Preempt whole gangs ordered after `job` until it fits; undo if it still does not.

        Jobs started in this pass are never victims, and nothing is released unless the
        victims' GPUs could cover the job, so a hopeless head costs no state churn. A job
        that found no room is not looked at again until the cluster changes or the order
        asks for a wake-up (its keys moved): arrivals alone cannot make room.
        """
        memo = (job.idx, self.state.version, self._wakeups)
        if memo == self._no_room:
            return None
        key = self.order.key
        mine = (key(job, self, now), job.idx)
        just_started = {j.idx for j in started}
        ranked = []
        for run in self.running.values():
            k = (key(run.job, self, now), run.job.idx)
            if k > mine and run.job.idx not in just_started:
                ranked.append((k, run))
        if not ranked:
            self._no_room = memo
            return None
        ranked.sort(key=lambda kr: kr[0], reverse=True)
        models = {m.model for m in self.state.candidate_models(job)} if job.gpu_milli else set()
        free = sum(self.state.models[m].free_milli for m in models)
        victims = [(run, self._milli_on(run, models)) for _, run in ranked]
        if job.gpu_milli:
            victims = [(run, milli) for run, milli in victims if milli]
            if free + sum(milli for _, milli in victims) < job.gpu_milli_total:
                self._no_room = memo
                return None
        chosen, plan = [], None
        for run, milli in victims:
            chosen.append(run)
            self.state.release(run.job, run.alloc)
            free += milli
            if free >= job.gpu_milli_total:
                plan = self.placement.place(job, self.state)
                if plan is not None:
                    break
        if plan is None:
            for run in chosen:
                self.state.restore(run.job, run.alloc)
            self._no_room = (job.idx, self.state.version, self._wakeups)
            return None
        for run in chosen:
            self._preempt(run, now)
            decisions.append(Decision(PREEMPT, run.job))
        return plan

    def _reclaim(self, job: Job, now: float, decisions: list[Decision], started: list[Job]):
        """The job is held by a gate: if that gate alone holds it and names running jobs whose
        stop would release it (`reclaim`: a lender taking back its lent quota), preempt them
        when the job then places, and return its plan; else change nothing. A failure is not
        tried again until the cluster changes or a wake-up (another gate's hold may have ended)."""
        seen, failed = self._no_reclaim
        if seen == (self.state.version, self._wakeups) and job.idx in failed:
            return None
        holders = [g for g in self.gates if g.hold(job, self, now) is not None]
        reclaim = getattr(holders[0], "reclaim", None) if len(holders) == 1 else None
        victims = reclaim(job, self, now) if reclaim is not None else []
        just_started = {j.idx for j in started}
        plan = None
        if victims and not any(run.job.idx in just_started for run in victims):
            for run in victims:
                self.state.release(run.job, run.alloc)
            plan = self.placement.place(job, self.state)
            if plan is None:
                for run in victims:
                    self.state.restore(run.job, run.alloc)
        if plan is None:
            if self._no_reclaim[0] != (self.state.version, self._wakeups):
                self._no_reclaim = ((self.state.version, self._wakeups), set())
            self._no_reclaim[1].add(job.idx)
            return None
        for run in victims:
            self._preempt(run, now)
            decisions.append(Decision(PREEMPT, run.job, RECLAIMED))
        return plan

    def _preempt(self, run: Run, now: float, lost: bool = False) -> None:
        """Stop a run and keep its progress; with `lost` (a revocation) only up to its last
        checkpoint, and none of it when the job never checkpoints."""
        job = run.job
        del self.running[job.idx]
        if lost:
            self.state.release(job, run.alloc)
        self._note_empty(run)
        self._account(run, now, -1)
        ran = max(0.0, now - run.start - run.overhead)
        self.attained[job.idx] = self.attained.get(job.idx, 0.0) + ran * job.gpus
        if not lost:
            self.work_left[job.idx] = max(0.0, run.work_left - run.work_done(now))
            self.overhead_due[job.idx] = self.policy.preemption.restart_s
        elif job.checkpoint_s:
            saved = ran // job.checkpoint_s * job.checkpoint_s
            self.work_left[job.idx] = max(0.0, run.work_left - saved * run.speed)
        else:
            self.work_left[job.idx] = job.duration
        self.last_run[job.idx] = (now, now - run.start)
        for hook in self._on_stopped:
            hook(job, run, self, now)

    # -- bookkeeping ----------------------------------------------------------------------
    def _start(self, job: Job, plan, now: float) -> None:
        alloc = self.state.allocate(job, plan)
        first = self.state.nodes[plan[0][0]]
        overhead = self.overhead_due.pop(job.idx, 0.0)
        transfer = self.context.transfer_s
        if transfer is not None and job.dataset_gb:
            overhead += transfer(job, first)
        if self.state.restrict:
            self.state.restrict.pop(job.idx, None)
        model = first.gpu_model
        run = Run(job, alloc, now, job.speed(model), overhead, self.work_left[job.idx], model)
        self.running[job.idx] = run
        self._account(run, now, +1)
        for hook in self._on_started:
            hook(job, run, self, now)

    def _note_empty(self, run: Run) -> None:
        if self.state.elastic:
            nodes = self.state.nodes
            self.emptied.extend(nodes[i] for i in {i for i, _ in run.alloc} if nodes[i].elastic and is_empty(nodes[i]))

    def _stop(self, run: Run, now: float) -> None:
        self.state.release(run.job, run.alloc)
        self._note_empty(run)
        self._account(run, now, -1)
        self.attained[run.job.idx] = (
            self.attained.get(run.job.idx, 0.0) + max(0.0, now - run.start - run.overhead) * run.job.gpus
        )
        for hook in self._on_stopped:
            hook(run.job, run, self, now)

    def _account(self, run: Run, now: float, sign: int) -> None:
        job = run.job
        usage = self.tenant_alloc.get(job.tenant)
        if usage is None:
            usage = self.tenant_alloc[job.tenant] = [0, 0, 0]
        usage[0] += sign * job.gpu_milli_total
        usage[1] += sign * job.cpu_milli * job.tasks
        usage[2] += sign * job.mem_mib * job.tasks

    def _enqueue(self, job: Job, now: float) -> None:
        self.pending[job.idx] = job
        self._cpu_only_pending += not job.gpu_milli
        if not self.dynamic:
            k = (self.order.key(job, self, now), job.idx)
            self._keys[job.idx] = k
            self._queue.add(k)
        if self._on_enqueue is not None:
            self._on_enqueue(job, self)

    def _dequeue(self, job: Job) -> None:
        del self.pending[job.idx]
        self._cpu_only_pending -= not job.gpu_milli
        if not self.dynamic:
            self._queue.remove(self._keys.pop(job.idx))
        if self._on_dequeue is not None:
            self._on_dequeue(job, self)


def task_share(node: Node, job: Job) -> float:
    """One task's dominant share of a node: the largest of its GPU, CPU and memory fractions."""
    share = 0.0
    if node.gpus:
        share = job.gpu_milli / (node.gpus * MILLI)
    if node.cpu_milli:
        share = max(share, job.cpu_milli / node.cpu_milli)
    if node.mem_mib:
        share = max(share, job.mem_mib / node.mem_mib)
    return share

