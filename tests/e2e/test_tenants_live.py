"""Two tenants on a live `serve`: queue quotas hold, and DRF lets a late tenant in ahead of a
busy tenant's backlog (issue 4)."""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest
from test_serve import TERMINAL, TOKEN, Server, overlaps

pytestmark = pytest.mark.xdist_group("live-serve")

SLEEP = "import time; time.sleep({})"


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def job(name: str, queue: str, secs: float) -> dict:
    return doc("Job", name, {"queue": queue, "command": [sys.executable, "-c", SLEEP.format(secs)],
                             "resources": {"gpu": 1}})


def run(tmp_path, policy: str, first: list[dict], late: list[dict] = ()) -> dict[str, dict]:
    """Apply `first` with the CLI, then `late` over the API as soon as a first job runs (a CLI
    process could start too slowly on a loaded machine to arrive while it still runs)."""
    server = Server(tmp_path / "data", "--policy", policy)
    try:
        path = tmp_path / "first.yaml"
        path.write_text("\n---\n".join(json.dumps(d) for d in first))
        server.cli("apply", "-f", str(path))
        if late:
            until = time.monotonic() + 30
            while not any(j["status"]["state"] == "RUNNING" for j in server.jobs().values()):
                assert time.monotonic() < until, "no job of the first batch started"
                time.sleep(0.05)
            r = httpx.post(f"{server.url}/v1/objects:batch", json={"objects": list(late)},
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = server.jobs()
            if all(j["status"]["state"] in TERMINAL for j in jobs.values()):
                return jobs
            time.sleep(0.1)
        raise AssertionError(f"jobs did not end: {[(n, j['status']['state']) for n, j in jobs.items()]}")
    finally:
        server.proc.kill()
        server.proc.wait()


def spans(jobs: dict[str, dict], prefix: str) -> list[tuple[float, float]]:
    return [(t["startedAt"], t["endedAt"]) for n, j in jobs.items() if n.startswith(prefix) for t in j["status"]["tasks"]]


def setup(quota_a: float | None, quota_b: float | None, gpus: int) -> list[dict]:
    return [doc("Tenant", "a", {}), doc("Tenant", "b", {}),
            doc("Queue", "qa", {"tenant": "a", **({"quota": {"gpu": quota_a}} if quota_a else {})}),
            doc("Queue", "qb", {"tenant": "b", **({"quota": {"gpu": quota_b}} if quota_b else {})}),
            doc("Pool", "box", {"nodes": 1, "gpu": {"model": "T4", "count": gpus}, "cpu": 8, "memoryGib": 8})]


def test_each_tenants_queue_quota_holds(tmp_path):
    jobs = run(tmp_path, "fcfs+first-fit", setup(1, 2, 4) + [job(f"a{i}", "qa", 0.4) for i in range(4)]
               + [job(f"b{i}", "qb", 0.4) for i in range(4)])
    assert {j["status"]["state"] for j in jobs.values()} == {"SUCCEEDED"}
    assert overlaps(spans(jobs, "a")) == 1  # qa's quota: one GPU
    assert overlaps(spans(jobs, "b")) == 2  # qb's: two, used while qa waits on its own quota


def test_drf_starts_a_late_tenant_ahead_of_a_backlog(tmp_path):
    backlog = [job(f"a{i}", "qa", 2.0) for i in range(6)]  # b arrives while the first two run
    late = [job(f"b{i}", "qb", 2.0) for i in range(2)]
    jobs = run(tmp_path, "drf+first-fit", setup(None, None, 2) + backlog, late)
    assert {j["status"]["state"] for j in jobs.values()} == {"SUCCEEDED"}
    first_b = min(s for s, _ in spans(jobs, "b"))
    a_starts = sorted(s for s, _ in spans(jobs, "a"))
    # b holds nothing when it arrives, a holds both GPUs: b's first job runs at the next free GPU,
    # before the rest of a's backlog (under FCFS it would wait for all six)
    assert first_b < a_starts[3]
