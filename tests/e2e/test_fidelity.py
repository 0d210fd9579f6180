"""Fidelity: the same jobs run live through `altostrat serve` and replayed in the twin start
and end at the same times, because both run one engine (issue 4)."""

from __future__ import annotations

import json
import random
import time

import pytest
from test_serve import TERMINAL, server  # noqa: F401  (the fixture)

from altostrat.service.twin import live_times, mean_jct_error, replay

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup),
# so that timings are not fought over by another live test
pytestmark = pytest.mark.xdist_group("live-serve")

POLICY = "fcfs+best-fit"  # serve's default


def objects(durations: dict[str, float], gpus: dict[str, int]) -> str:
    docs = ["apiVersion: altostrat/v1\nkind: Tenant\nmetadata: {name: team}",
            "apiVersion: altostrat/v1\nkind: Queue\nmetadata: {name: q}\nspec: {tenant: team, quota: {gpu: 100}}",
            "apiVersion: altostrat/v1\nkind: Pool\nmetadata: {name: box}\n"
            "spec: {nodes: 1, gpu: {model: T4, count: 3}, cpu: 16, memoryGib: 32}"]
    for name, d in durations.items():
        docs.append(f"apiVersion: altostrat/v1\nkind: Job\nmetadata: {{name: {name}}}\n"
                    f"spec: {{queue: q, command: [sleep, '{d}'], resources: {{gpu: 1}}, tasks: {gpus[name]}}}")
    return "\n---\n".join(docs) + "\n"


def test_live_starts_and_ends_match_the_twin(server, tmp_path):  # noqa: F811
    rng = random.Random(7)
    durations = {f"j{i:02d}": round(rng.uniform(1.0, 2.5), 2) for i in range(12)}
    gpus = {name: 2 if i % 4 == 3 else 1 for i, name in enumerate(durations)}  # some gangs, so FCFS order matters
    spec = tmp_path / "objects.yaml"
    spec.write_text(objects(durations, gpus))
    server.cli("apply", "-f", str(spec))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = server.jobs()
        if all(j["status"]["state"] in TERMINAL for j in jobs.values()):
            break
        time.sleep(0.2)
    assert {j["status"]["state"] for j in jobs.values()} == {"SUCCEEDED"}
    views = list(jobs.values())
    twin = replay(views, json.loads(server.cli("get", "pools", "-o", "json").stdout), POLICY, durations)
    live = live_times(views)
    t0 = min(j["metadata"]["createdAt"] for j in views)
    submitted = {j["metadata"]["name"]: j["metadata"]["createdAt"] - t0 for j in views}
    assert sorted(live, key=lambda n: live[n][0]) == sorted(twin, key=lambda n: twin[n][0])  # same start order
    # The live side is later by a reconciler tick and a process start per wave: a few per cent on a
    # quiet machine (benchmarks/fidelity.py holds the 5 % target), near 20 % with the CPUs oversubscribed.
    # The bound catches a different schedule, not a slow machine.
    assert mean_jct_error(live, twin, submitted) <= 0.25
    assert all(abs(live[n][1] - twin[n][1]) <= 0.3 * twin[n][1] + 0.5 for n in live)
