"""Load, end to end: 2,000 job submissions from 8 concurrent clients over loopback to a real
`altostrat serve`, while its reconciler runs the queue on a one-GPU pool. Every submission
carries an Idempotency-Key; every tenth is retried after its answer, and every 25th is sent
twice at once (a client that timed out and retried while the first request was still in
flight). Afterwards every job exists exactly once, each retry was answered from the first
response without a second job, and no request was answered 5xx."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from helpers import start_serve

from altostrat.service.database import database_url
from altostrat.service.store import Store

pytestmark = pytest.mark.xdist_group("live-serve")

TOKEN = "load-admin-token"
CLIENTS, PER_CLIENT = 8, 250  # 2,000 jobs
RETRY_EVERY, RACE_EVERY = 10, 25


def meta(kind: str, name: str, spec: dict | None = None) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, **({"spec": spec} if spec else {})}


def job(name: str) -> dict:
    # `true` on the only GPU: the reconciler starts, reaps and concludes jobs while the load goes on
    return meta("Job", name, {"queue": "q", "command": ["true"], "resources": {"gpu": 1}})


def submit_all(url: str, c: int) -> list[tuple[str, list[httpx.Response]]]:
    """Client `c`'s jobs: (name, every answer to its submissions), in order."""
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as client, \
            ThreadPoolExecutor(2) as twice:
        for i in range(PER_CLIENT):
            name = f"load-{c}-{i:03d}"

            def post(name=name):
                return client.post("/v1/objects", json=job(name), headers={"Idempotency-Key": f"key-{name}"})
            if i % RACE_EVERY == 0:
                answers = list(twice.map(lambda _: post(), range(2)))
            else:
                answers = [post()]
            if i % RETRY_EVERY == 0:
                answers.append(post())
            out.append((name, answers))
    return out


def test_2000_submissions_from_8_clients_none_lost_none_duplicated(tmp_path):
    data = tmp_path / "data"
    proc, url = start_serve(data, TOKEN)
    try:
        setup = [meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
                 meta("Pool", "one", {"nodes": 1, "gpu": {"model": "T4", "count": 1}, "cpu": 4, "memoryGib": 4})]
        r = httpx.post(f"{url}/v1/objects:batch", json={"objects": setup}, timeout=30,
                       headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        with ThreadPoolExecutor(CLIENTS) as pool:
            submitted = [item for items in pool.map(lambda c: submit_all(url, c), range(CLIENTS)) for item in items]
        listed = httpx.get(f"{url}/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60).json()["items"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)

    statuses = [a.status_code for _, answers in submitted for a in answers]
    assert len(submitted) == CLIENTS * PER_CLIENT
    assert len(statuses) == 2000 + 2000 // RETRY_EVERY + 2000 // RACE_EVERY  # 2,280 requests
    assert set(statuses) == {201}, sorted(set(statuses))  # every one created, or its creation replayed; no 5xx
    for name, answers in submitted:
        # exactly one request created the job; the others got that response again
        fresh = [a for a in answers if a.headers.get("Idempotent-Replayed") != "true"]
        assert len(fresh) == 1, (name, [a.headers.get("Idempotent-Replayed") for a in answers])
        assert all(a.json() == fresh[0].json() for a in answers), name
        assert fresh[0].json()["object"]["metadata"]["name"] == name
    names = [j["metadata"]["name"] for j in listed]
    assert len(names) == len(set(names)) == CLIENTS * PER_CLIENT
    assert set(names) == {name for name, _ in submitted}
    # the reconciler ran jobs meanwhile; none failed, whatever state the stop left it in
    assert {j["status"]["state"] for j in listed} <= {"PENDING", "RUNNING", "SUCCEEDED"}

    store = Store(database_url(data, None))
    try:
        audited = [r["target"] for r in store.audit_rows() if r["action"] == "apply" and r["target"].startswith("Job/")]
    finally:
        store.close()
    assert sorted(audited) == sorted(f"Job/{name}" for name, _ in submitted)  # one audit row per job, replays none
