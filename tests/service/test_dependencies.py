"""Job dependencies (`spec.dependsOn`, afterok): validation at apply, and the reconciler holding a
dependent out of the engine until its dependencies succeed, failing it when one does not
(docs/service.md, "Dependencies"). The reconciler runs turn by turn on a real store; its tasks
are a scripted executor's, so that the test chooses when each ends and how."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altostrat.service.api import create_app
from altostrat.service.dashboard import explain_pending
from altostrat.service.describe import describe_job
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.reconciler import Reconciler
from altostrat.service.database import database_url
from altostrat.service.store import ACTIVE, CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Store

ADMIN = "dependencies-admin-token"
ALL = (*ACTIVE, SUCCEEDED, FAILED, CANCELLED)


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def job(name: str, *deps: str, queue: str = "q") -> dict:
    return obj("Job", name, queue=queue, command=["true"], dependsOn=list(deps))


BASE = [obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "q", tenant="a"), obj("Queue", "qb", tenant="b"),
        obj("Pool", "cpus", nodes=1, cpu=64, memoryGib=64)]  # room for every job at once: only dependencies order them


class Handle:
    def __init__(self, job: str) -> None:
        self.job, self.code = job, None


class Scripted:
    """An executor whose tasks run until the test ends them (`end`); a stop signal ends one at
    once. `events` records ("start", job) and ("end", job, code) in order."""

    name = "scripted"

    def __init__(self) -> None:
        self.running: dict[str, Handle] = {}
        self.events: list[tuple] = []

    def started(self) -> list[str]:
        return [e[1] for e in self.events if e[0] == "start"]

    def end(self, job: str, code: int) -> None:
        self.running.pop(job).code = code
        self.events.append(("end", job, code))

    def describe(self) -> str:
        return "scripted"

    def spawn(self, task) -> Handle:
        handle = self.running[task.env["ALTOSTRAT_JOB"]] = Handle(task.env["ALTOSTRAT_JOB"])
        self.events.append(("start", handle.job))
        return handle

    def identity(self, handle: Handle) -> dict:
        return {}

    def release(self, handle: Handle) -> None:
        pass

    def alive(self, handle: Handle) -> bool:
        return handle.code is None

    def signal(self, handle: Handle, sig: int) -> None:
        if handle.code is None:
            self.end(handle.job, -sig)

    def kill(self, handle: Handle) -> None:
        self.signal(handle, 9)

    def exit_status(self, handle: Handle, exit_file: Path) -> int | None:
        return handle.code

    def adopt(self, row: dict) -> None:
        return None

    def close(self) -> None:
        pass


def apply(store: Store, *docs: dict) -> None:
    with store.tx() as conn:
        store.apply_many(conn, [parse_object(d) for d in docs])


def turn(rec: Reconciler) -> None:
    """One turn of the reconciler's loop: reap what ended, read what changed."""
    rec._reap()
    rec.sync(full=False)


def jobs(store: Store) -> dict[str, dict]:
    with store.read() as conn:
        return {j["metadata"]["name"]: j for j in store.list(conn, "Job")}


def state(store: Store) -> dict[str, tuple[str, str | None]]:
    return {name: (j["status"]["state"], j["status"].get("reason")) for name, j in jobs(store).items()}


def view_id(store: Store, name: str) -> int:
    with store.read() as conn:
        return store._row(conn, "Job", name)["id"]


@pytest.fixture
def world(store, tmp_path):
    apply(store, *BASE)
    executor = Scripted()
    rec = Reconciler(store, "fcfs+first-fit", tmp_path, grace_s=1, executor=executor)
    return store, rec, executor


def test_a_chain_runs_in_order_and_a_waiting_job_says_what_it_waits_for(world):
    store, rec, ex = world
    apply(store, job("a"), job("b", "a"), job("c", "b"), job("d", "a", "b"))
    turn(rec)
    assert ex.started() == ["a"]
    assert state(store) == {"a": (RUNNING, None), "b": (PENDING, "waits for job a (RUNNING)"),
                            "c": (PENDING, "waits for job b (PENDING)"),
                            "d": (PENDING, "waits for job a (RUNNING), job b (PENDING)")}
    view = jobs(store)["d"]
    assert view["status"]["waitingFor"] == ["a", "b"]
    assert describe_job(view, None, 0.0)["pending"] == {
        "reason": "dependency", "message": "waits for job a (RUNNING), job b (PENDING)", "queuePosition": None,
        "pendingJobs": None, "estimatedStart": None}
    # the dashboard's rows and describe queue take the same path for a job the engine does not hold
    assert explain_pending([view], lambda names: {}, 0.0) == {"d": ("dependency", "waits for job a (RUNNING), "
                                                                                  "job b (PENDING)")}
    assert rec.engine.pending == {} and set(rec.engine.running) == {view_id(store, "a")}  # held out of the engine
    ex.end("a", 0)
    turn(rec)
    assert ex.started() == ["a", "b"]
    assert state(store)["d"] == (PENDING, "waits for job b (RUNNING)")
    assert jobs(store)["d"]["status"]["waitingFor"] == ["b"]
    ex.end("b", 0)
    turn(rec)
    assert ex.started() == ["a", "b", "c", "d"]
    assert "waitingFor" not in jobs(store)["c"]["status"]
    ex.end("c", 0)
    ex.end("d", 0)
    turn(rec)
    assert state(store) == {name: (SUCCEEDED, None) for name in "abcd"}


def test_a_failed_dependency_fails_its_dependents_down_the_chain_without_running_them(world):
    store, rec, ex = world
    apply(store, job("a"), job("b", "a"), job("c", "b"), job("free"))
    turn(rec)
    assert ex.started() == ["a", "free"]
    ex.end("a", 3)
    turn(rec)
    assert state(store) == {"a": (FAILED, "task 0 exited with code 3 (attempt 1, 0 retries allowed)"),
                            "b": (FAILED, "dependency a ended FAILED"), "c": (FAILED, "dependency b ended FAILED"),
                            "free": (RUNNING, None)}
    assert ex.started() == ["a", "free"]
    assert {n: jobs(store)[n]["status"].get("attempts", 0) for n in "bc"} == {"b": 0, "c": 0}
    assert "waitingFor" not in jobs(store)["b"]["status"]


def test_cancelling_a_dependency_fails_its_dependent_and_a_held_job_can_be_cancelled(world):
    store, rec, ex = world
    apply(store, job("a"), job("b", "a"), job("x", "a"))
    turn(rec)
    with store.tx() as conn:
        store.request_cancel(conn, "x")  # held: cancelled without ever entering the engine
        store.request_cancel(conn, "a")  # running: stopped, then CANCELLED
    turn(rec)
    turn(rec)
    assert state(store) == {"a": (CANCELLED, "cancelled"), "b": (FAILED, "dependency a ended CANCELLED"),
                            "x": (CANCELLED, "cancelled")}
    assert ex.started() == ["a"]


def test_a_dependency_deleted_or_replaced_before_the_dependent_saw_it_succeed_fails_it(world):
    store, rec, ex = world
    apply(store, job("a"), job("b", "a"), job("c"), job("d", "c"))
    turn(rec)
    ex.end("a", 0)
    ex.end("c", 0)
    rec._reap()  # a and c SUCCEEDED; no sync yet, so b and d are still held
    with store.tx() as conn:
        store.delete(conn, "Job", "a")
        store.delete(conn, "Job", "c")
    apply(store, job("c"))  # a new job of the same name is not the one d named
    rec.sync(full=False)
    assert state(store)["b"] == (FAILED, "dependency a was deleted")
    assert state(store)["d"] == (FAILED, "dependency c was deleted")
    assert ex.started() == ["a", "c", "c"]


def test_a_restarted_reconciler_holds_a_waiting_job_again(world, tmp_path):
    store, rec, ex = world
    apply(store, job("a"), job("b", "a"))
    turn(rec)
    again = Reconciler(store, "fcfs+first-fit", tmp_path, grace_s=1, executor=Scripted())
    again.sync()
    assert again.held.keys() == {view_id(store, "b")} and again.engine.pending == {}
    assert state(store)["b"] == (PENDING, "waits for job a (RUNNING)")


# -- validation -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, errors", [
    ({"dependsOn": ["j"]}, [("spec.dependsOn[0]", "a job cannot depend on itself")]),
    ({"dependsOn": ["x", "y", "x"]}, [("spec.dependsOn[2]", "'x' is listed twice; name each dependency once")]),
    ({"dependsOn": ["ok", "bad name"]}, [("spec.dependsOn[1]", "String should match pattern "
                                                                "'^[A-Za-z0-9][A-Za-z0-9._-]*$'")]),
    ({"dependsOn": [f"d{i}" for i in range(65)]}, [("spec.dependsOn", "List should have at most 64 items after "
                                                                      "validation, not 65")]),
    ({"dependsOn": "a"}, [("spec.dependsOn", "Input should be a valid list")]),
])
def test_what_a_dependency_list_may_not_be(spec, errors):
    with pytest.raises(ObjectError) as exc:
        parse_object(obj("Job", "j", queue="q", command=["true"], **spec))
    assert exc.value.errors == errors


@pytest.fixture
def client(store):
    store.ensure_admin_token(ADMIN)
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        yield c


def post(client: TestClient, body: dict, token: str = ADMIN):
    return client.post("/v1/objects", json=body, headers={"Authorization": f"Bearer {token}"})


def test_apply_checks_that_dependencies_exist_in_the_tenant_and_never_change(client, store):
    assert client.post("/v1/objects:batch", json={"objects": BASE + [job("prep"), job("other", queue="qb")]},
                       headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 200
    with store.tx() as conn:
        _, token_a = store.create_token(conn, "tenant", "a", None)
    missing = post(client, job("train", "prep", "nope"), token_a)
    assert missing.status_code == 422
    assert missing.json()["detail"] == [{"field": "spec.dependsOn[1]", "message": "no Job named 'nope' in this job's "
                                         "tenant; apply it first (a dependency must exist before its dependents)"}]
    # tenant b's job: the same answer as a job that does not exist, for a tenant and for the admin
    for token in (token_a, ADMIN):
        theirs = post(client, job("train", "prep", "other"), token)
        assert theirs.status_code == 422
        [error] = missing.json()["detail"]
        assert theirs.json() == {"detail": [{**error, "message": error["message"].replace("'nope'", "'other'")}]}
    assert post(client, job("train", "prep"), token_a).json()["result"] == "created"
    assert post(client, job("train", "prep"), token_a).json()["result"] == "unchanged"
    changed = post(client, job("train"), token_a)
    assert changed.status_code == 422 and changed.json()["detail"] == [{
        "field": "spec.dependsOn", "message": "cannot change once the job exists (it is ['prep']); apply a job of a "
                                              "new name for other dependencies"}]


def test_a_pipeline_in_one_batch_names_only_jobs_before_it(client):
    auth = {"Authorization": f"Bearer {ADMIN}"}
    r = client.post("/v1/objects:batch", json={"objects": BASE + [job("s1"), job("s2", "s1"), job("s3", "s2")]},
                    headers=auth)
    assert [x["result"] for x in r.json()["results"]] == ["created"] * 8
    r = client.post("/v1/objects:batch", json={"objects": [job("t2", "t1"), job("t1")]}, headers=auth)
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["objects[0].spec.dependsOn[0]"]
    # a name given twice in a batch is one job, whichever path wrote it first: its dependsOn cannot change
    for twice in ([job("u1"), job("u2"), job("u2", "u1")], [job("u1"), job("u2", "u1"), job("u2")]):
        r = client.post("/v1/objects:batch", json={"objects": twice}, headers=auth)
        assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["objects[2].spec.dependsOn"]


# -- the invariant over random pipelines --------------------------------------------------------
@pytest.fixture(scope="module")
def dag_store(tmp_path_factory):
    store = Store(database_url(tmp_path_factory.mktemp("dags"), None))
    store.upgrade()
    apply(store, *BASE)
    yield store
    store.close()


OUTCOMES = ("succeed", "fail", "cancel")
dags = st.integers(1, 7).flatmap(lambda n: st.tuples(
    st.tuples(*[st.sets(st.integers(0, i - 1), max_size=3) if i else st.just(set()) for i in range(n)]),
    st.tuples(*[st.sampled_from(OUTCOMES) for _ in range(n)])))
examples = iter(range(10**9))  # each example's jobs get names of their own in the shared store


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dag=dags, data=st.data())
def test_no_job_starts_before_its_dependencies_succeed_and_each_ends_once(dag_store, dag, data):
    deps, outcomes = dag
    name = f"e{next(examples)}-".__add__
    apply(dag_store, *[job(name(str(i)), *[name(str(d)) for d in sorted(deps[i])]) for i in range(len(deps))])
    ex = Scripted()
    rec = Reconciler(dag_store, "fcfs+first-fit", Path(tempfile.mkdtemp()), grace_s=1, executor=ex)
    endings: dict[str, list[str]] = {}
    log_job = rec.obs.job

    def record(event, job, *args, **kw):
        if event in ("succeeded", "failed", "cancelled"):
            endings.setdefault(job, []).append(event)
        log_job(event, job, *args, **kw)
    rec.obs.job = record
    mine = {name(str(i)): i for i in range(len(deps))}
    cancelled = set()
    for _ in range(6 * len(deps) + 6):
        turn(rec)
        now = {n: s for n, (s, _) in state(dag_store).items() if n in mine}
        if all(s not in ACTIVE for s in now.values()):
            break
        # the test's moves: end a running task as its outcome says, or cancel a job meant to be cancelled
        moves = [n for n in ex.running if outcomes[mine[n]] != "cancel"]
        moves += [n for n, s in now.items() if s in ACTIVE and outcomes[mine[n]] == "cancel" and n not in cancelled]
        if not moves:
            continue  # a cancel in flight: the next turn settles it
        move = data.draw(st.sampled_from(sorted(moves)))
        if outcomes[mine[move]] == "cancel":
            cancelled.add(move)
            with dag_store.tx() as conn:
                dag_store.request_cancel(conn, move)
        else:
            ex.end(move, 0 if outcomes[mine[move]] == "succeed" else 1)
    final = {n: s for n, (s, _) in state(dag_store).items() if n in mine}
    assert all(s not in ACTIVE for s in final.values()), final
    assert {n: len(endings.get(n, [])) for n in mine} == {n: 1 for n in mine}  # each ended exactly once
    started = ex.started()
    assert len(started) == len(set(started))  # none ran twice
    for n, i in mine.items():
        needs = {name(str(d)) for d in deps[i]}
        if n in started:  # every dependency had ended with exit code 0 before it started
            before = ex.events[:ex.events.index(("start", n))]
            assert all(("end", d, 0) in before for d in needs), (n, ex.events)
        if any(final[d] != SUCCEEDED for d in needs):
            assert n not in started
            assert final[n] in (FAILED, CANCELLED)
        elif outcomes[i] == "succeed":
            assert final[n] == SUCCEEDED  # nothing held it back for good
