"""`GET /metrics` with a tenant's token: only its own queues' series and the shared pools' (and
the reconciler's error count), never another tenant's or queue's name; an admin's or a
cluster-wide viewer's scrape holds every series."""

from __future__ import annotations

import itertools
import logging

from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from altostrat.cluster.state import ClusterState
from altostrat.engine import Engine
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.service.api import create_app
from altostrat.service.observability import TENANT_PER_QUEUE, TENANT_SHARED, Observer
from altostrat.service.database import database_url
from altostrat.service.store import FAILED, PENDING, RUNNING, SUCCEEDED, Store
from altostrat.service.twin import pool_nodes
from altostrat.workload.job import Job

ADMIN = "metrics-scope-admin"
POOLS = {"gpus": {"nodes": 1, "gpu": {"model": "T4", "count": 4}, "cpu": 16, "memoryGib": 64},
         "cpus": {"nodes": 1, "cpu": 4, "memoryGib": 8}}


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def families(text: str) -> dict[str, dict[tuple, float]]:
    """Family name -> {(sample name, sorted labels): value}, the counters' `_created` series left
    out (their values are clock times); a family the text declares without samples maps to {}."""
    return {f.name: {(s.name, tuple(sorted(s.labels.items()))): s.value for s in f.samples}
            for f in text_string_to_metric_families(text) if not f.name.endswith("_created")}


class Scrapes:
    """A store, an Observer whose engine holds the Pools' nodes, the API over both, and tokens."""

    def __init__(self, tmp_path) -> None:
        self.store = Store(database_url(tmp_path, None))
        self.store.upgrade()
        self.store.ensure_admin_token(ADMIN)
        self.engine = Engine(ClusterState(pool_nodes(POOLS)), parse_policy("fcfs+best-fit"))
        self.obs = Observer(self.store, lambda: self.engine)
        self.http = TestClient(create_app(self.store, observer=self.obs), raise_server_exceptions=False)
        self.apply(*(obj("Pool", name, **spec) for name, spec in POOLS.items()))

    def apply(self, *objects: dict) -> None:
        r = self.http.post("/v1/objects:batch", json={"objects": list(objects)}, headers=bearer(ADMIN))
        assert r.status_code == 200, r.text

    def token(self, role: str, tenant: str | None = None) -> str:
        r = self.http.post("/v1/tokens", json={"role": role, "tenant": tenant}, headers=bearer(ADMIN))
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def set_state(self, name: str, state: str) -> None:
        with self.store.tx() as conn:
            job_id = next(r["id"] for r in self.store.jobs(conn, states=(PENDING,)) if r["name"] == name)
            self.store.update_job(conn, job_id, state)

    def scrape(self, token: str) -> str:
        r = self.http.get("/metrics", headers=bearer(token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
        return r.text

    def close(self) -> None:
        self.http.close()
        self.store.close()


def test_a_tenant_scrapes_its_queues_and_the_pools_an_admin_everything(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="altostrat.jobs")  # the life-cycle records are not what is tested
    s = Scrapes(tmp_path)
    try:
        s.apply(obj("Tenant", "acme"), obj("Tenant", "globex"), obj("Queue", "acme-a", tenant="acme"),
                obj("Queue", "acme-b", tenant="acme"), obj("Queue", "globex-q", tenant="globex"),
                *(obj("Job", n, queue=q, command=["true"]) for n, q in (
                    ("a1", "acme-a"), ("a2", "acme-a"), ("a3", "acme-a"), ("b1", "acme-b"), ("g1", "globex-q"),
                    ("g2", "globex-q"))))
        s.set_state("a2", RUNNING)
        s.set_state("a3", SUCCEEDED)
        s.set_state("g1", RUNNING)
        s.set_state("g2", FAILED)
        # the engine holds 1.5 GPUs of the T4 node (whoever's: the gauge names nobody)
        for idx, milli in enumerate((MILLI, MILLI // 2)):
            s.obs.decided(s.engine.submit(Job(id=f"g{idx}", submit=0, duration=10, gpu_milli=milli, cpu_milli=MILLI,
                                              mem_mib=1024, tenant="globex-q", idx=idx), 0.0), 0.002)
        for event, job, queue in (("started", "a2", "acme-a"), ("started", "a3", "acme-a"), ("succeeded", "a3", "acme-a"),
                                  ("started", "g1", "globex-q"), ("started", "g2", "globex-q"),
                                  ("failed", "g2", "globex-q")):
            s.obs.job(event, job, queue, event)
        acme, acme_viewer, globex = s.token("tenant", "acme"), s.token("viewer", "acme"), s.token("tenant", "globex")
        viewer = s.token("viewer")

        shared = {
            "altostrat_gpus_allocated": {("altostrat_gpus_allocated", (("pool", "cpus"),)): 0.0,
                                         ("altostrat_gpus_allocated", (("pool", "gpus"),)): 1.5},
            "altostrat_gpus_capacity": {("altostrat_gpus_capacity", (("pool", "cpus"),)): 0.0,
                                        ("altostrat_gpus_capacity", (("pool", "gpus"),)): 4.0},
            "altostrat_reconciler_errors": {("altostrat_reconciler_errors_total", ()): 0.0}}
        acme_sees = {
            "altostrat_queue_pending_jobs": {("altostrat_queue_pending_jobs", (("queue", "acme-a"),)): 1.0,
                                             ("altostrat_queue_pending_jobs", (("queue", "acme-b"),)): 1.0},
            "altostrat_queue_running_jobs": {("altostrat_queue_running_jobs", (("queue", "acme-a"),)): 1.0,
                                             ("altostrat_queue_running_jobs", (("queue", "acme-b"),)): 0.0},
            "altostrat_jobs_admitted": {("altostrat_jobs_admitted_total", (("queue", "acme-a"),)): 2.0},
            "altostrat_jobs_ended": {("altostrat_jobs_ended_total", (("queue", "acme-a"), ("state", SUCCEEDED))): 1.0},
            **shared}
        for token in (acme, acme_viewer):
            text = s.scrape(token)
            assert families(text) == acme_sees
            assert "globex" not in text
        globex_sees = families(s.scrape(globex))
        assert globex_sees["altostrat_jobs_ended"] == {
            ("altostrat_jobs_ended_total", (("queue", "globex-q"), ("state", FAILED))): 1.0}
        assert globex_sees["altostrat_queue_pending_jobs"] == {
            ("altostrat_queue_pending_jobs", (("queue", "globex-q"),)): 0.0}

        everything = families(s.scrape(ADMIN))
        assert families(s.scrape(viewer)) == everything
        assert everything["altostrat_queue_running_jobs"] == {
            **acme_sees["altostrat_queue_running_jobs"],
            ("altostrat_queue_running_jobs", (("queue", "globex-q"),)): 1.0}
        assert everything["altostrat_jobs_admitted"] == {
            ("altostrat_jobs_admitted_total", (("queue", "acme-a"),)): 2.0,
            ("altostrat_jobs_admitted_total", (("queue", "globex-q"),)): 2.0}
        # the operator's alone: every tenant's engine activity
        assert everything["altostrat_decisions"] == {("altostrat_decisions_total", (("kind", k),)): v
                                                     for k, v in (("start", 2.0), ("preempt", 0.0), ("reject", 0.0))}
        assert everything["altostrat_decision_seconds"][("altostrat_decision_seconds_count", ())] == 2.0
        assert set(everything) - set(acme_sees) == {"altostrat_decisions", "altostrat_decision_seconds",
                                                      "altostrat_recovery_seconds"}  # the operator's

        assert s.http.get("/metrics").status_code == 401
        assert s.http.get("/metrics", headers=bearer("not-a-token")).status_code == 401
    finally:
        s.close()


def test_a_deleted_queue_leaves_nothing_to_one_created_again_under_its_name(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="altostrat.jobs")
    s = Scrapes(tmp_path)
    try:
        s.apply(obj("Tenant", "acme"), obj("Tenant", "globex"), obj("Queue", "shared-name", tenant="acme"))
        s.obs.job("started", "a1", "shared-name", "started")
        s.obs.job("failed", "a1", "shared-name", "failed")
        assert s.http.delete("/v1/queues/shared-name", headers=bearer(ADMIN)).status_code == 200
        s.apply(obj("Queue", "shared-name", tenant="globex"))
        got = families(s.scrape(s.token("tenant", "globex")))
        assert (got["altostrat_jobs_admitted"], got["altostrat_jobs_ended"]) == ({}, {})
        assert got["altostrat_queue_pending_jobs"] == {
            ("altostrat_queue_pending_jobs", (("queue", "shared-name"),)): 0.0}
    finally:
        s.close()


# names are Z<n>q or Z<n>t and a tail without Z or q: none is part of another, nor of the
# exposition's fixed text (which holds no Z), so a name absent from the text is absent indeed
TAIL = st.from_regex(r"[a-pr-y0-9._-]{0,6}", fullmatch=True)
STATES = (PENDING, RUNNING, SUCCEEDED, FAILED)
EVENTS = ("started", "succeeded", "failed", "cancelled")


def test_property_no_scrape_of_a_tenant_names_another_tenant_or_its_queues(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="altostrat.jobs")
    s = Scrapes(tmp_path)
    uid = itertools.count()
    owners: dict[str, str] = {}  # queue -> tenant, over every example (the store keeps them all)
    tokens: dict[str, list[str]] = {}  # tenant -> its tenant token and its viewer token

    tenant_st = st.lists(  # per tenant: per queue, (job states, counter events)
        st.tuples(TAIL, st.lists(st.tuples(TAIL, st.lists(st.sampled_from(STATES), max_size=3),
                                           st.lists(st.sampled_from(EVENTS), max_size=3)), min_size=1, max_size=3)),
        min_size=1, max_size=3)

    @settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(tenant_st)
    def run(tenants):
        objects, states, events, new = [], [], [], []
        for tenant_tail, queues in tenants:
            tenant = f"Z{next(uid)}t{tenant_tail}"
            new.append(tenant)
            objects.append(obj("Tenant", tenant))
            for queue_tail, job_states, queue_events in queues:
                queue = f"Z{next(uid)}q{queue_tail}"
                owners[queue] = tenant
                objects.append(obj("Queue", queue, tenant=tenant))
                for state in job_states:
                    job = f"Z{next(uid)}j"
                    objects.append(obj("Job", job, queue=queue, command=["true"]))
                    states.append((job, state))
                events += [(event, queue) for event in queue_events]
        s.apply(*objects)
        for job, state in states:
            if state != PENDING:
                s.set_state(job, state)
        for event, queue in events:
            s.obs.job(event, "j", queue, event)
        for tenant in new:
            tokens[tenant] = [s.token("tenant", tenant), s.token("viewer", tenant)]
        admin = families(s.scrape(ADMIN))
        # this example's tenants, among every tenant and queue of the examples before
        for tenant in new:
            mine = {q for q, t in owners.items() if t == tenant}
            others = ({q for q, t in owners.items() if t != tenant} | set(tokens)) - {tenant}
            for token in tokens[tenant]:
                text = s.scrape(token)
                assert not [name for name in others if name in text], tenant
                got = families(text)
                assert set(got) == set(TENANT_PER_QUEUE | TENANT_SHARED)
                # exactly the admin's series that carry one of its queues, or no queue at all
                for family, series in got.items():
                    assert series == {k: v for k, v in admin[family].items() if dict(k[1]).get("queue", "") in mine
                                      or "queue" not in dict(k[1])}, family
                assert {dict(labels)["queue"] for _, labels in got["altostrat_queue_pending_jobs"]} == mine

    try:
        run()
    finally:
        s.close()
