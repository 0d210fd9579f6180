"""The reconciler: the one thread that owns the Engine and turns store changes into its events.

Each turn it reaps exited tasks, kills tasks past their grace period, and (when woken by the
API, or every `RESYNC_S`) reads Pools, Queues and active Jobs: a new pending Job becomes
`engine.submit`, a cancelled one `engine.withdraw`, an attempt that ended `engine.finish`,
at the wall clock's time (monotonic seconds since start). The engine is the simulator's: its
decisions are applied here. START writes the attempt's task rows (STARTING), commits, then
spawns; PREEMPT commits the job back to PENDING, then sends the job's checkpoint signal and
SIGKILL after the grace period; REJECT fails the job with the engine's reason. A START that
lands on devices whose preempted tasks are still stopping waits for them to exit.

A live job's run time is unknown: the engine plans with `spec.expectedDurationS` (default
3600 s), which only EASY backfill and SJF-like orders read.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from altostrat.cluster.state import ClusterState
from altostrat.engine import PREEMPT, RECLAIMED, REJECT, START, Decision, Engine
from altostrat.policy.registry import parse_policy
from altostrat.service import attempts, dependencies, describe
from altostrat.service import executor as ex
from altostrat.service.handoff import Handoff
from altostrat.service.observability import Observer
from altostrat.service.pacing import Pacer
from altostrat.service.quota import QueueQuotaGate, book_past_runs, queue_context, queue_policy
from altostrat.service.store import (CANCELLED, EXITED, FAILED, LOST, PENDING, RUNNING, STARTING, STOPPED,
                                     STOPPING, Store)
from altostrat.service.twin import live_job, pool_nodes
from altostrat.workload.job import Job

log = logging.getLogger("altostrat.reconciler")

RESYNC_S = 0.5  # how stale the reconciler's view of the store may get without a wake-up
# Between full reads of the active jobs, a sync reads exactly the jobs written since its last
# read (their change seq; database.change_seq). A full read every FULL_SYNC_S, and when a retry's
# backoff ends, compares every active job's version with what it has seen and decodes only the
# changed ones and those the engine does not hold. When pools or queues change (a new engine),
# every active job is decoded.
FULL_SYNC_S = 10.0
TICK_S = 0.05  # reaping interval while tasks run
SYNC_GAP_S = 0.01  # wake-ups closer than this share one sync (a burst of submissions: one read, not one each)
SYNC_MAX_GAP_S, SYNC_DUTY = 0.05, 0.25  # under a stream of wake-ups, sync reads take at most a quarter of the time


@dataclass
class Task:
    """A spawned (or adopted) process of one task of one attempt."""

    row: int
    job_id: int
    attempt: int
    node: str
    devices: tuple[int, ...]
    proc: object  # the executor's handle (local: subprocess.Popen, or ex.Adopted after a restart)
    exit_file: Path
    kill_at: float | None = None  # monotonic time of the SIGKILL once signalled


@dataclass
class Live:
    """A job the engine knows (pending or running), or whose tasks still stop."""

    id: int
    name: str
    spec: dict
    job: Job
    attempt: int = 0  # the current attempt's number (0: none yet)
    unspawned: list[tuple] = field(default_factory=list)  # (row, task, node, devices) waiting for devices
    stopping: str | None = None  # why the current attempt's tasks are being stopped
    # adopted at start-up: (node names, devices, start) for Engine.adopt, and why to stop it at once
    recovered: tuple | None = None
    recovered_stop: str | None = None


class Reconciler:
    def __init__(self, store: Store, policy: str, data_dir: Path, grace_s: float = 30.0,
                 executor: ex.Executor | None = None) -> None:
        parse_policy(policy)  # a bad name fails at start-up, not in the thread
        self.store, self.policy_name, self.data_dir, self.grace_s = store, policy, Path(data_dir), grace_s
        self.executor = executor if executor is not None else ex.LocalExecutor()
        self.obs = Observer(store, lambda: self.engine)  # its metrics; the API serves them
        self.mono0, self.wall0 = time.monotonic(), time.time()
        self.engine: Engine | None = None
        self.gate = QueueQuotaGate()
        self.node_idx: dict[str, int] = {}
        self.pool_sig: tuple | None = None
        self.cursor: int | None = None  # the last change seq a sync read; the next reads the jobs written after it
        self.seen: dict[int, int] = {}  # id -> resource_version of the active jobs as syncs read them
        self.backoff_ends = math.inf  # earliest end of a skipped retry's backoff
        self.held: dict[int, dict] = {}  # id -> row of the PENDING jobs held out of the engine for dependencies
        self.queues: dict[str, dict] = {}
        self.live: dict[int, Live] = {}
        self.tasks: dict[int, Task] = {}  # task row -> process
        self.wake_at: float | None = None  # engine time a policy piece asked to be woken
        self._wake = threading.Event()
        self._changed = False  # set by wake(): the store changed, so the loop reads it
        self.pacer = Pacer(SYNC_GAP_S, SYNC_MAX_GAP_S, SYNC_DUTY)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._asks: queue.SimpleQueue = queue.SimpleQueue()  # (read, Future) from explain and reasons
        self.fresh = Handoff()  # new Jobs' rows from the API's group commits
        store.created = self.fresh.put

    def now(self) -> float:
        return time.monotonic() - self.mono0

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        t0 = time.perf_counter()
        self.recover()
        self.sync()  # builds the engine, which adopts the recovered jobs before any task is reaped
        self.obs.recovery_seconds.set(time.perf_counter() - t0)
        self._thread = threading.Thread(target=self._loop, name="reconciler", daemon=True)
        self._thread.start()

    def _read_jobs(self, conn, versions: dict[int, int], ids: list[int], cursor: int) -> list[dict]:
        """The rows of `ids` at their `versions`: those handed over at that version, the others read."""
        handed, read = self.fresh.take(versions, ids, cursor)
        return handed + self.store.jobs_by_id(conn, read)

    def wake(self) -> None:
        """The store changed: read it at once."""
        self._changed = True
        self._wake.set()

    def _task_ended(self) -> None:
        """A task's process ended (the executor's watcher): reap it at once, without a read."""
        self._wake.set()

    def _watch(self, proc) -> None:
        watch = getattr(self.executor, "watch", None)
        if watch is not None:
            watch(proc, self._task_ended)

    def stop(self) -> None:
        """Stop the loop, then every task (checkpoint signal, grace period, SIGKILL); their jobs
        go back to PENDING and run again when the service starts."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        running = [live for live in self.live.values()
                   if live.stopping is None and self.engine is not None and live.id in self.engine.running]
        with self.store.tx() as conn:  # write-ahead: a crash from here on finds them pending, not failed
            for live in running:
                self.store.update_job(conn, live.id, PENDING, reason="interrupted: the service stopped; "
                                                                     "it runs again when the service starts")
                self.obs.job("interrupted", live.name, live.spec["queue"], "interrupted: the service stops",
                             attempt=live.attempt)
        for live in running:
            self._stop_tasks(live, "shutdown")
        deadline = time.monotonic() + self.grace_s + 5
        while self.tasks and time.monotonic() < deadline:
            self._reap()
            time.sleep(TICK_S)

    def recover(self) -> None:
        """At start-up, settle every task a previous run left STARTING, RUNNING or STOPPING
        (after a crash; a clean stop leaves none running).

        A task whose process still runs (same pid and /proc start time) is adopted: if it
        belongs to its job's current attempt, the job stays RUNNING and enters the engine with
        exactly its devices (at the first sync, which builds the engine); otherwise (its job
        was preempted, stopped or cancelled) it gets its checkpoint signal again and SIGKILL
        after the grace period. A task whose process is gone is EXITED (or STOPPED) with the
        exit code its wrapper recorded, or LOST without one: it never ran its command (its pid
        was not committed, so the wrapper never got the go-ahead) or was killed with SIGKILL.
        A RUNNING job none of whose tasks runs any more is concluded from those rows now.
        """
        wall = time.time()
        with self.store.tx() as conn:
            current = {j["id"]: j for j in self.store.jobs(conn, (RUNNING,))}
            for row in self.store.live_tasks(conn):
                job = current.get(row["job_id"])
                # an attempt its job has left (preempted, stopped, cancelled): its end is a stop
                settled = job is None or row["attempt"] != job["status"].get("attempts")
                exit_file = ex.exit_path(row["log_path"])
                proc = self.executor.adopt(row)
                if proc is not None and self.executor.alive(proc):
                    task = Task(row["id"], row["job_id"], row["attempt"], row["node"], _devices(row["devices"]), proc,
                                exit_file)
                    self.tasks[row["id"]] = task
                    self._watch(proc)
                    if settled:
                        self.store.update_task(conn, row["id"], state=STOPPING)  # write-ahead, as _stop_tasks
                        spec = self.store.job(conn, row["job_id"])["spec"]
                        self.executor.signal(proc, ex.signal_number(spec["checkpointSignal"]))
                        task.kill_at = time.monotonic() + self.grace_s
                    continue
                code = None if proc is None else self.executor.exit_status(proc, exit_file)
                state = STOPPED if settled or row["state"] == STOPPING else EXITED if code is not None else LOST
                self.store.update_task(conn, row["id"], state=state, exit_code=code, ended_at=wall)
            for job in current.values():
                attempt = job["status"].get("attempts", 0)
                rows = self.store.attempt_tasks(conn, job["id"], attempt)
                if any(r["id"] in self.tasks for r in rows):
                    self._adopt(job, rows)
                elif job["status"].get("cancelRequested"):
                    self.store.update_job(conn, job["id"], CANCELLED, reason="cancelled", finishedAt=wall)
                    self.obs.job("cancelled", job["name"], job["spec"]["queue"], "cancelled",
                                 attempt=job["status"].get("attempts", 0))
                else:
                    attempts.conclude(self.store, self.obs, conn, job, rows)

    def _adopt(self, job: dict, rows: list[dict]) -> None:
        """A RUNNING job some of whose tasks still run: the engine adopts it at the first sync. An
        attempt that already failed, lost a task or was being stopped is stopped then."""
        live = Live(job["id"], job["name"], job["spec"], self._job(job), job["status"]["attempts"])
        start = min((r["started_at"] for r in rows if r["started_at"] is not None), default=self.wall0)
        live.recovered = ([r["node"] for r in rows], [_devices(r["devices"]) for r in rows], start - self.wall0)
        if any(r["state"] in (LOST, STOPPED, STOPPING) or (r["state"] == EXITED and r["exit_code"] != 0) for r in rows):
            live.recovered_stop = "cancel" if job["status"].get("cancelRequested") else "failed"
        self.live[live.id] = live
        self.gate.queue_of[live.id] = live.spec["queue"]
        self.obs.job("adopted", live.name, live.spec["queue"], f"adopted (attempt {live.attempt})",
                     attempt=live.attempt, nodes=live.recovered[0])

    def _loop(self) -> None:
        last_sync = last_full = -math.inf
        try:
            while not self._stop.is_set():
                self._wake.wait(TICK_S if self.tasks or self._waiting() else RESYNC_S)
                self._wake.clear()
                woken, self._changed = self._changed, False
                if woken:
                    self._stop.wait(self.pacer.delay())
                if self._stop.is_set():
                    break
                self._reap()
                if woken or time.monotonic() - last_sync >= RESYNC_S:
                    last_sync = time.monotonic()
                    full = last_sync - last_full >= FULL_SYNC_S
                    if full:
                        last_full = last_sync
                    self.sync(full)
                self._answer()
                if self.engine is not None and self.wake_at is not None and self.now() >= self.wake_at:
                    self.wake_at = None
                    self._apply(self._decide(self.engine.wakeup, self.now()))
        except BaseException as exc:  # the API goes on answering; /healthz reports this
            log.exception("reconciler stopped")
            self.obs.errors.inc()
            self.error = exc

    # -- describe (docs/service.md, "Describe") -----------------------------------------------
    def explain(self, name: str, timeout: float = 10.0) -> describe.Snapshot | None:
        """The engine's view of a pending job (describe.Snapshot), or None when the engine does
        not hold it pending. Called from API threads: the reconciler thread answers between
        two turns, after a sync, so the engine is only ever read by the thread that changes it.
        Raises TimeoutError when the reconciler does not answer in time (stopped, or stuck)."""
        return self._ask(lambda: self._snapshot(name), timeout)

    def reasons(self, names: set[str], timeout: float = 2.0) -> dict[str, tuple[str, str]]:
        """(reason, message) of each job of `names` the engine holds pending (the dashboard's),
        asked as `explain` is."""
        def read() -> dict[str, tuple[str, str]]:
            jobs = [live.job for live in self.live.values() if live.name in names and self._pending_in_engine(live)]
            return describe.pending_reasons(self.engine, jobs, self.now(), self.gate)
        return self._ask(read, timeout)

    def _ask(self, read, timeout: float):
        """`read()` run on the reconciler thread between two turns; TimeoutError if it does not answer."""
        if self._thread is None or not self._thread.is_alive():
            raise TimeoutError("the reconciler is not running")
        answer: Future = Future()
        self._asks.put((read, answer))
        self.wake()
        return answer.result(timeout)

    def _answer(self) -> None:
        while not self._asks.empty():
            read, answer = self._asks.get_nowait()
            try:
                answer.set_result(read())
            except Exception as exc:  # the asking API thread reports it; the loop goes on
                answer.set_exception(exc)

    def _snapshot(self, name: str) -> describe.Snapshot | None:
        live = next((live for live in self.live.values() if live.name == name), None)
        if live is None or not self._pending_in_engine(live):
            return None
        return describe.snapshot(self.engine, live.job, self.now(), time.time(), self.gate, self.policy_name)

    def _waiting(self) -> bool:
        return any(live.unspawned for live in self.live.values())

    # -- reading the store ----------------------------------------------------------------
    def sync(self, full: bool = True) -> None:
        read_at = time.time()
        with self.pacer.timing(), self.store.read() as conn:  # paced by what the read costs, not what follows
            pool_sig = self.store.pool_signature(conn)
            queues = self.store.specs(conn, "Queue")
            # a Queue change rebuilds the engine too: its weights, cohorts and budgets live in it
            pools = self.store.specs(conn, "Pool") if pool_sig != self.pool_sig or queues != self.queues else None
            full = full or self.cursor is None or pools is not None or self.backoff_ends <= read_at
            if self.cursor is None or pools is not None:  # a new engine: every active job is submitted again
                jobs = self.store.jobs(conn)
                self.seen = {r["id"]: r["resource_version"] for r in jobs}
                cursor = max((r["seq"] for r in jobs), default=0)
            elif full:  # decode the changed ones, and those the engine could take that it does not hold
                versions, cursor = self.store.job_versions(conn, None)
                jobs = self._read_jobs(conn, versions, [i for i, v in versions.items() if self.seen.get(i) != v or (
                    self.engine is not None and i not in self.live)], cursor)
                self.seen = versions
            else:  # exactly the jobs written since the last read
                versions, cursor = self.store.job_versions(conn, self.cursor)
                jobs = self._read_jobs(conn, versions, [i for i, v in versions.items() if self.seen.get(i) != v], cursor)
                self.seen.update(versions)
        self.cursor = cursor if self.cursor is None else max(self.cursor, cursor)
        if full:
            self.backoff_ends = math.inf
        if pools is not None:
            self.pool_sig = pool_sig
            self._rebuild(pools, queues)
        wall = time.time()
        for row in sorted(jobs, key=lambda r: r["id"]):
            live = self.live.get(row["id"])
            status = row["status"]
            self.held.pop(row["id"], None)  # decided again from this read
            if status.get("cancelRequested"):
                self._cancel(row, live)
            elif live is not None:
                if row["state"] == PENDING and row["spec"] != live.spec and self._pending_in_engine(live):
                    decisions = self._decide(self.engine.withdraw, live.job, self.now())
                    self._forget(live)
                    self._apply(decisions)
                    self._submit(row)
            elif row["state"] == PENDING and self.engine is not None:
                if status.get("notBefore", 0) > wall:  # unchanged until its backoff ends: a full read then picks it up
                    self.backoff_ends = min(self.backoff_ends, status["notBefore"])
                elif dependencies.held(row):
                    self.held[row["id"]] = row  # settled below, once every change is read
                else:
                    self._submit(row)
        if self.held and self.engine is not None:
            self._settle_held()

    def _settle_held(self) -> None:
        """Jobs held for their dependencies (dependencies.py), in id order, so that a failure
        cascades down a chain at once: submitted once all succeeded, FAILED once one did not,
        else their status says what they wait for (describe's `dependency`)."""
        with self.store.read() as conn:
            jobs = dependencies.found(conn, {d for row in self.held.values() for d in row["spec"]["dependsOn"]})
        writes, failed = [], []  # (id, state, status changes), (row, reason)
        for row in sorted(self.held.values(), key=lambda r: r["id"]):
            verdict, reason, waits = dependencies.verdict(row, jobs)
            status = row["status"]
            if verdict == dependencies.FAIL:
                del self.held[row["id"]]
                writes.append((row["id"], FAILED, dict(reason=reason, waitingFor=None, finishedAt=time.time())))
                failed.append((row, reason))
                jobs[row["name"]] = dependencies.Dependency(row["id"], row["tenant"], FAILED)
            elif verdict == dependencies.RUN:
                del self.held[row["id"]]
                if "waitingFor" in status:  # before the engine decides: a rejection writes its own reason
                    with self.store.tx() as conn:
                        self.store.update_job(conn, row["id"], reason=None, waitingFor=None)
                self._submit(row)  # now, so that its dependents below see it RUNNING if it started
                jobs[row["name"]] = dependencies.Dependency(row["id"], row["tenant"], RUNNING if row["id"] in
                                                            self.engine.running else PENDING)
            elif status.get("reason") != reason or status.get("waitingFor") != waits:
                writes.append((row["id"], None, dict(reason=reason, waitingFor=waits)))
                row["status"] = {**status, "reason": reason, "waitingFor": waits}
        if writes:
            with self.store.tx() as conn:
                for job_id, state, changes in writes:
                    self.store.update_job(conn, job_id, state, **changes)
        for row, reason in failed:
            self.obs.job("failed", row["name"], row["spec"]["queue"], f"failed: {reason}", attempt=0, reason=reason)

    def _pending_in_engine(self, live: Live) -> bool:
        return self.engine is not None and live.id in self.engine.pending

    def _rebuild(self, pools: dict[str, dict], queues: dict[str, dict]) -> None:
        """New Pools or Queues: a new engine on the new nodes; running jobs keep exactly their devices
        (a pool with tasks running cannot change), pending ones are submitted again in order."""
        nodes = pool_nodes(pools)
        old = self.engine
        self.gate = QueueQuotaGate(queues)
        self.gate.queue_of = {live.id: live.spec["queue"] for live in self.live.values()}
        self.queues = queues
        self.node_idx = {n.name: n.idx for n in nodes}
        self.engine = None
        if not nodes:
            self.live = {i: live for i, live in self.live.items() if old is None or i not in old.pending}
            return
        self.engine = Engine(ClusterState(nodes), queue_policy(parse_policy(self.policy_name), self.gate, queues),
                             queue_context(queues, self.wall0))
        with self.store.tx() as conn:  # budgets: what ended runs spent this period (running ones are adopted below)
            book_past_runs(self.engine, conn, self.wall0, time.time())
        resubmit, recovered = [], []
        for live in self.live.values():
            run = old.running.get(live.id) if old is not None else None
            if run is not None:
                placed = [old.state.nodes[i].name for i, _ in run.alloc], [d for _, d in run.alloc], run.start
            else:
                placed, live.recovered = live.recovered, None
                recovered += [live] if placed is not None else []
            if placed is not None:
                names, devices, start = placed
                if all(name in self.node_idx for name in names):
                    self.engine.adopt(live.job, tuple((self.node_idx[n], d) for n, d in zip(names, devices)), start)
                    continue
                # its pool went away between the API's check and its start: run it again elsewhere
                with self.store.tx() as conn:
                    self.store.update_job(conn, live.id, PENDING, reason="its pool was removed; waiting to run again")
                self._stop_tasks(live, "preempt")
                resubmit.append(live)
            elif old is not None and live.id in old.pending:
                resubmit.append(live)
        for live in recovered:
            if live.recovered_stop is not None and live.id in self.engine.running:
                self._stop_tasks(live, live.recovered_stop)
        for live in resubmit:
            self._apply(self._decide(self.engine.submit, live.job, self.now()))

    def _job(self, row: dict) -> Job:
        """The engine's view of a Job row, on this run's clock (submitted before it: negative); its
        queue is its fair-share party."""
        return live_job(row["name"], row["spec"], row["spec"]["queue"], row["created_at"] - self.wall0, row["id"])

    def _submit(self, row: dict) -> None:
        job = self._job(row)
        self.live[row["id"]] = Live(row["id"], row["name"], row["spec"], job, row["status"].get("attempts", 0))
        self.gate.queue_of[row["id"]] = row["spec"]["queue"]
        self._apply(self._decide(self.engine.submit, job, self.now()))

    # -- decisions ------------------------------------------------------------------------
    def _decide(self, call, *args) -> list[Decision]:
        """An engine call, its wall time observed when it decides anything (as the simulator's
        decision_ns), its decisions counted."""
        t0 = time.perf_counter()
        decisions = call(*args)
        self.obs.decided(decisions, time.perf_counter() - t0)
        return decisions

    def _apply(self, decisions: list[Decision]) -> None:
        for d in decisions:
            live = self.live[d.job.idx]
            if d.kind is START:
                if not self._stop.is_set():  # shutting down: it stays PENDING in the store
                    self._start(live)
            elif d.kind is PREEMPT:
                why = "preempted: its queue's borrowed quota was reclaimed" if d.reason is RECLAIMED else "preempted"
                with self.store.tx() as conn:
                    self.store.update_job(conn, live.id, PENDING, reason=f"{why}; waiting to run again")
                self.obs.job("preempted", live.name, live.spec["queue"], f"{why} (attempt {live.attempt})",
                             attempt=live.attempt)
                self._stop_tasks(live, "preempt")
            elif d.kind is REJECT:
                with self.store.tx() as conn:
                    self.store.update_job(conn, live.id, FAILED, reason=f"rejected: {d.reason}", finishedAt=time.time())
                self.obs.job("failed", live.name, live.spec["queue"], f"failed: rejected: {d.reason}",
                             attempt=live.attempt, reason=f"rejected: {d.reason}")
                self._forget(live)
        if self.engine is not None:
            self.wake_at = self.engine.next_wakeup(self.now()) if self.engine.pending else None

    def _start(self, live: Live) -> None:
        run = self.engine.running[live.id]
        live.attempt += 1
        live.stopping = None
        nodes = self.engine.state.nodes
        rows = []
        for task, (idx, devices) in enumerate(run.alloc):
            rows.append(dict(job_id=live.id, attempt=live.attempt, task=task, state=STARTING, node=nodes[idx].name,
                             devices=",".join(map(str, devices)),
                             log_path=str(ex.log_path(self.data_dir, live.name, live.id, live.attempt, task))))
        with self.store.tx() as conn:  # write-ahead: recorded before any process exists
            self.store.update_job(conn, live.id, RUNNING, attempts=live.attempt, reason=None, notBefore=None,
                                  startedAt=time.time())
            ids = self.store.add_tasks(conn, rows)
        self.obs.job("started", live.name, live.spec["queue"],
                     f"started (attempt {live.attempt} on {', '.join(dict.fromkeys(r['node'] for r in rows))})",
                     attempt=live.attempt, nodes=[r["node"] for r in rows], devices=[r["devices"] for r in rows])
        live.unspawned = [(row_id, r["task"], r["node"], tuple(idx_devices[1]))
                          for row_id, r, idx_devices in zip(ids, rows, run.alloc)]
        self._spawn_if_free(live)

    def _spawn_if_free(self, live: Live) -> None:
        """Spawn the attempt's tasks unless a stopping task still holds one of their devices, or
        an older attempt of the same job still runs (never two attempts at once)."""
        wanted = {(node, d) for _, _, node, devices in live.unspawned for d in devices}
        for task in self.tasks.values():
            if task.job_id == live.id or (task.kill_at is not None and any((task.node, d) in wanted for d in task.devices)):
                return
        spec, pending, live.unspawned = live.spec, live.unspawned, []
        folder = ex.job_dir(self.data_dir, live.name, live.id)
        folder.mkdir(parents=True, exist_ok=True)
        cwd = Path(spec["workingDir"]) if spec.get("workingDir") else folder
        mem_mib = round(spec["resources"]["memoryGib"] * 1024)
        signal_number = ex.signal_number(spec["checkpointSignal"])
        for n, (row, index, node, devices) in enumerate(pending):
            env = ex.task_env(spec["env"], {
                "CUDA_VISIBLE_DEVICES": ",".join(map(str, devices)), "ALTOSTRAT_JOB": live.name,
                "ALTOSTRAT_ATTEMPT": str(live.attempt), "ALTOSTRAT_TASK_INDEX": str(index),
                "ALTOSTRAT_NUM_TASKS": str(spec["tasks"]), "ALTOSTRAT_NODE": node})
            logfile = ex.log_path(self.data_dir, live.name, live.id, live.attempt, index)
            try:
                proc = self.executor.spawn(ex.TaskSpec(spec["command"], env, cwd, logfile, spec["resources"]["cpu"],
                                                       mem_mib, spec["resources"]["gpu"], signal_number))
            except OSError as exc:
                with self.store.tx() as conn:
                    self.store.update_task(conn, row, state=EXITED, ended_at=time.time())
                    self.store.update_job(conn, live.id, startError=f"task {index}: {exc}")
                live.unspawned = pending[n + 1:]  # never spawned: _stop_tasks records them LOST
                self._stop_tasks(live, "failed")
                return
            with self.store.tx() as conn:  # write-ahead: the command runs only once its process is on record
                self.store.update_task(conn, row, state=RUNNING, **self.executor.identity(proc), started_at=time.time())
            self.executor.release(proc)
            self.tasks[row] = Task(row, live.id, live.attempt, node, devices, proc, ex.exit_path(logfile))
            self._watch(proc)
        self._maybe_conclude(live)

    def _stop_tasks(self, live: Live, why: str) -> None:
        """Checkpoint signal now, SIGKILL after the grace period; tasks not yet spawned never are."""
        live.stopping = why
        mine = [t for t in self.tasks.values() if t.job_id == live.id and t.attempt == live.attempt and t.kill_at is None]
        with self.store.tx() as conn:  # write-ahead: the intent is recorded before the signal
            for task in mine:
                self.store.update_task(conn, task.row, state=STOPPING)
            for row, *_ in live.unspawned:
                self.store.update_task(conn, row, state=LOST, ended_at=time.time())
        live.unspawned = []
        sig = ex.signal_number(live.spec["checkpointSignal"])
        for task in mine:
            self.executor.signal(task.proc, sig)
            task.kill_at = time.monotonic() + self.grace_s
        self._maybe_conclude(live)

    def _cancel(self, row: dict, live: Live | None) -> None:
        if live is None or self.engine is None or live.id not in self.engine.running:
            with self.store.tx() as conn:
                self.store.update_job(conn, row["id"], CANCELLED, reason="cancelled", finishedAt=time.time())
            self.obs.job("cancelled", row["name"], row["spec"]["queue"], "cancelled",
                         attempt=row["status"].get("attempts", 0))
            if live is not None:
                decisions = (self._decide(self.engine.withdraw, live.job, self.now())
                             if self._pending_in_engine(live) else [])
                self._forget(live)
                self._apply(decisions)
        elif live.stopping is None:
            self._stop_tasks(live, "cancel")

    # -- processes ------------------------------------------------------------------------
    def _reap(self) -> None:
        for task in list(self.tasks.values()):
            if self.executor.alive(task.proc):
                if task.kill_at is not None and time.monotonic() >= task.kill_at:
                    self.executor.kill(task.proc)
                continue
            self.executor.kill(task.proc)  # what the task left behind in its session
            del self.tasks[task.row]
            code = self.executor.exit_status(task.proc, task.exit_file)
            state = STOPPED if task.kill_at is not None else EXITED if code is not None else LOST
            with self.store.tx() as conn:
                self.store.update_task(conn, task.row, state=state, exit_code=code, ended_at=time.time())
            live = self.live.get(task.job_id)
            if live is None or task.attempt != live.attempt or self.engine is None or live.id not in self.engine.running:
                continue  # a leftover of an attempt already settled (preempted, stopped, cancelled)
            if code != 0 and live.stopping is None:  # a lost task (code None) fails its gang too
                self._stop_tasks(live, "failed")  # a gang fails as a whole
            else:
                self._maybe_conclude(live)
        for live in list(self.live.values()):
            if live.unspawned:
                self._spawn_if_free(live)

    def _maybe_conclude(self, live: Live) -> None:
        """Once no task of the current attempt runs (or waits to spawn): settle the attempt."""
        if live.unspawned or live.stopping == "preempt" or self.engine is None or live.id not in self.engine.running:
            return
        if any(t.job_id == live.id and t.attempt == live.attempt for t in self.tasks.values()):
            return
        with self.store.tx() as conn:
            if live.stopping == "cancel":
                self.store.update_job(conn, live.id, CANCELLED, reason="cancelled", finishedAt=time.time())
                self.obs.job("cancelled", live.name, live.spec["queue"], "cancelled", attempt=live.attempt)
            elif live.stopping == "shutdown":
                return
            else:
                attempts.conclude(self.store, self.obs, conn, self.store.job(conn, live.id),
                                  self.store.attempt_tasks(conn, live.id, live.attempt))
            state = self.store.job(conn, live.id)["state"]
        # before _forget: the quota gate hears of the stop
        decisions = self._decide(self.engine.finish, live.job, self.now())
        self._forget(live)
        self._apply(decisions)
        if state == PENDING or self.held:
            self.wake()  # its retry is due after the backoff, or a job held for it may go: sync looks again

    def _forget(self, live: Live) -> None:
        self.live.pop(live.id, None)
        self.gate.queue_of.pop(live.id, None)


def _devices(text: str) -> tuple[int, ...]:
    """A task row's devices ("0,1"; "" for none) as the engine's allocation holds them."""
    return tuple(int(d) for d in text.split(",") if d)
