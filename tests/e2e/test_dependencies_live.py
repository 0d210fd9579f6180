"""A three-step pipeline on a live `serve`, applied from one file with the CLI: each step starts
only after the one it depends on succeeded, and the last says `dependency` while it waits
(docs/service.md, "Dependencies")."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from helpers import start_serve, until

pytestmark = pytest.mark.xdist_group("live-serve")

TOKEN = "dependencies-e2e-token"
# each step appends its name to the shared file, then runs until the test releases it (a file
# named go-STEP beside it appears), so that the test, not timing, says when each step ends
STEP = ("import os, sys, time; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')\n"
        "while not os.path.exists(os.path.join(os.path.dirname(sys.argv[1]), 'go-' + sys.argv[2])): time.sleep(0.05)")


def pipeline(record) -> str:
    docs = ["apiVersion: altostrat/v1\nkind: Tenant\nmetadata: {name: ml}",
            "apiVersion: altostrat/v1\nkind: Queue\nmetadata: {name: q}\nspec: {tenant: ml}",
            "apiVersion: altostrat/v1\nkind: Pool\nmetadata: {name: box}\nspec: {cpu: 8, memoryGib: 8}"]
    for step, after in (("fetch", []), ("prep", ["fetch"]), ("train", ["prep"])):
        command = json.dumps([sys.executable, "-c", STEP, str(record), step])
        docs.append(f"apiVersion: altostrat/v1\nkind: Job\nmetadata: {{name: {step}}}\n"
                    f"spec: {{queue: q, command: {command}, dependsOn: {json.dumps(after)}}}")
    return "\n---\n".join(docs) + "\n"


def test_a_pipeline_runs_in_order_and_the_last_step_says_what_it_waits_for(tmp_path):
    record = tmp_path / "order.txt"
    (tmp_path / "pipeline.yaml").write_text(pipeline(record))
    proc, url = start_serve(tmp_path / "data", TOKEN)
    env = {**os.environ, "ALTOSTRAT_SERVER": url, "ALTOSTRAT_TOKEN": TOKEN}

    def cli(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "altostrat.cli", *args], env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout

    try:
        cli("apply", "-f", str(tmp_path / "pipeline.yaml"))
        # while fetch runs, prep waits for it and train for prep
        waiting = until("train to be held for prep", lambda: (lambda p: p["reason"] == "dependency" and p)(
            json.loads(cli("describe", "job", "train", "-o", "json"))["pending"]), timeout=60)
        assert waiting["message"] == "waits for job prep (PENDING)"
        until("fetch to run", lambda: record.exists() and record.read_text() == "fetch\n", timeout=60)
        prep = json.loads(cli("describe", "job", "prep", "-o", "json"))["pending"]
        assert (prep["reason"], prep["message"]) == ("dependency", "waits for job fetch (RUNNING)")
        (tmp_path / "go-fetch").touch()
        text = until("prep to run while train waits", lambda: (lambda t: "prep (RUNNING)" in t and t)(
            cli("describe", "job", "train")), timeout=60)
        assert "Reason:    dependency: waits for job prep (RUNNING)" in text, text
        assert "Estimated start: once its dependencies succeed" in text
        assert record.read_text() == "fetch\nprep\n"  # train has not started
        (tmp_path / "go-prep").touch()
        (tmp_path / "go-train").touch()

        def ended() -> dict | None:
            views = {j["metadata"]["name"]: j for j in json.loads(cli("get", "jobs", "-o", "json"))}
            return views if all(j["status"]["state"] in ("SUCCEEDED", "FAILED", "CANCELLED")
                                for j in views.values()) else None
        views = until("the pipeline to end", ended, timeout=90)
    finally:
        proc.kill()
        proc.wait()
    assert {n: j["status"]["state"] for n, j in views.items()} == {"fetch": "SUCCEEDED", "prep": "SUCCEEDED",
                                                                   "train": "SUCCEEDED"}
    assert record.read_text() == "fetch\nprep\ntrain\n"
    span = {n: (j["status"]["tasks"][0]["startedAt"], j["status"]["tasks"][0]["endedAt"]) for n, j in views.items()}
    assert span["fetch"][1] <= span["prep"][0] and span["prep"][1] <= span["train"][0]
