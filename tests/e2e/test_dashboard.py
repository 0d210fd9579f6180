"""The web dashboard in a real browser: Debian's headless Chromium, driven by selenium through
the system's /usr/bin/chromedriver (never a downloaded browser or driver), against a real
`altostrat serve` running real jobs (issue 4)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from helpers import start_serve

pytestmark = pytest.mark.xdist_group("live-serve")

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
ADMIN = "dashboard-e2e-admin-token"
SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]
WAIT_S = 30  # for the page to show what the service has: generous, the machine may be busy


def doc(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


OBJECTS = [doc("Tenant", "acme"), doc("Tenant", "globex"),
           doc("Queue", "acme-q", tenant="acme", quota={"gpu": 1}), doc("Queue", "globex-q", tenant="globex"),
           doc("Pool", "gpus", nodes=1, gpu={"model": "T4", "count": 4}, cpu=8, memoryGib=16),
           doc("Job", "acme-train", queue="acme-q", command=SLEEP, resources={"gpu": 1}),
           doc("Job", "globex-secret", queue="globex-q", command=SLEEP, resources={"gpu": 1})]
WAITING = doc("Job", "acme-wait", queue="acme-q", command=SLEEP, resources={"gpu": 1})  # over acme-q's quota


def browser():
    """Headless Chromium with a fresh profile, nothing fetched from the network."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run scripts/install-test-deps.sh (it installs Debian's "
                    "chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="altostrat-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
                "--disable-dev-shm-usage", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    # an explicit driver path: selenium-manager (which would download one) never runs
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    return driver, profile


def wait_for(driver, condition, what: str):
    from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S, poll_frequency=0.2,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        raise AssertionError(f"the page did not show {what} within {WAIT_S} s; it shows:\n"
                             f"{driver.find_element('tag name', 'body').text}") from None


def cells(driver, table: str) -> dict[str, dict[str, str]]:
    """Row name -> {column: text} of one of the page's tables, read in one script call (the page
    redraws every few seconds)."""
    return driver.execute_script("""
        const out = {};
        for (const row of document.querySelectorAll(`#${arguments[0]} tbody tr[data-name]`)) {
          out[row.dataset.name] = {};
          for (const td of row.cells) out[row.dataset.name][td.dataset.col] = td.textContent;
        }
        return out;""", table)


def sign_in(driver, token: str) -> None:
    field = wait_for(driver, lambda d: d.find_element("id", "token") if d.find_element("id", "token").is_displayed()
                     else False, "the token form")
    field.send_keys(token)
    driver.find_element("id", "show").click()


def test_dashboard_shows_queues_jobs_reasons_and_pools_per_token(tmp_path):
    proc, url = start_serve(tmp_path / "data", ADMIN)
    driver = profile = None
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    try:
        assert http.post("/v1/objects:batch", json={"objects": OBJECTS}).status_code == 200
        deadline = time.monotonic() + WAIT_S
        while {j["metadata"]["name"]: j["status"]["state"] for j in http.get("/v1/jobs").json()["items"]} != {
                "acme-train": "RUNNING", "globex-secret": "RUNNING"}:
            assert time.monotonic() < deadline, http.get("/v1/jobs").json()
            time.sleep(0.1)
        assert http.post("/v1/objects", json=WAITING).status_code == 201  # after acme-train holds the quota
        r = http.post("/v1/tokens", json={"role": "tenant", "tenant": "acme"})
        acme = r.json()["token"]

        driver, profile = browser()
        driver.get(url)  # / redirects to /ui
        assert driver.current_url == f"{url}/ui"
        sign_in(driver, ADMIN)
        wait_for(driver, lambda d: cells(d, "jobs").get("acme-wait", {}).get("reason", "").startswith("quota"),
                 "acme-wait's pending reason")
        jobs = cells(driver, "jobs")
        assert set(jobs) == {"acme-train", "acme-wait", "globex-secret"}
        assert {k: jobs["acme-train"][k] for k in ("queue", "tenant", "state", "node")} == {
            "queue": "acme-q", "tenant": "acme", "state": "RUNNING", "node": "gpus/0"}
        assert (jobs["acme-wait"]["state"], jobs["acme-wait"]["reason"], jobs["acme-wait"]["node"]) == (
            "PENDING", "quota queue acme-q uses 1/1 GPUs and the job asks 1 more (no cohort to borrow from)", "")
        assert jobs["acme-wait"]["age"].endswith("s")
        assert cells(driver, "queues")["acme-q"] == {"name": "acme-q", "tenant": "acme", "pending": "1",
                                                     "running": "1", "gpu": "1 / 1", "cpu": "1 / no limit",
                                                     "memory": "0 / no limit"}
        assert cells(driver, "pools")["gpus"] == {
            "name": "gpus", "nodes": "1", "gpus": "4 × T4", "cpus": "8", "gpu-allocated": "2 / 4",
            "cpu-allocated": "2 / 8", "gpu-utilization": "50%", "cpu-utilization": "25%"}
        assert driver.find_element("id", "who").text == "admin, every tenant"

        # the tenant's token: its own queue and jobs, the shared pool; the other tenant not at all
        driver.find_element("id", "sign-out").click()
        sign_in(driver, acme)
        wait_for(driver, lambda d: d.find_element("id", "who").text == "tenant of tenant acme", "acme's view")
        wait_for(driver, lambda d: set(cells(d, "jobs")) == {"acme-train", "acme-wait"}, "acme's two jobs")
        assert set(cells(driver, "queues")) == {"acme-q"}
        assert cells(driver, "pools")["gpus"]["gpu-utilization"] == "50%"
        assert "globex" not in driver.page_source

        # a revoked or wrong token is asked for again
        driver.execute_script("sessionStorage.setItem('altostrat.token', 'not-a-token')")
        driver.refresh()
        wait_for(driver, lambda d: d.find_element("id", "login-error").text.startswith("That token is not valid"),
                 "the token form again")
        assert not driver.find_element("id", "board").is_displayed()
    finally:
        if driver is not None:
            driver.quit()
        if profile is not None:
            shutil.rmtree(profile, ignore_errors=True)
        http.close()
        proc.send_signal(signal.SIGTERM)  # a clean stop: the jobs' processes are stopped too
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
