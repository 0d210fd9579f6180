"""Small builders and invariant checks shared by the tests."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import httpx

from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import Engine
from altostrat.resources import MILLI
from altostrat.workload.job import Job, number_jobs


def cluster(*shapes: tuple[str | None, int, int], cpu: int = 64, mem_gib: int = 512) -> ClusterState:
    """shapes: (gpu model, gpus per node, node count)."""
    nodes = []
    for model, gpus, count in shapes:
        for _ in range(count):
            nodes.append(Node(len(nodes), f"n{len(nodes)}", model or "cpu", model, gpus, cpu * MILLI, mem_gib * 1024))
    return ClusterState(nodes)


def job(name: str, submit: float, duration: float, gpus: int = 1, **kw) -> Job:
    """A gang of `gpus` one-GPU tasks unless tasks/gpu_milli are given."""
    kw.setdefault("tasks", gpus)
    kw.setdefault("gpu_milli", MILLI)
    return Job(id=name, submit=submit, duration=duration, **kw)


def jobs(*items: Job) -> list[Job]:
    return number_jobs(list(items))


def check_state(state: ClusterState, engine: Engine | None = None) -> None:
    """No node over capacity, indexes equal to a recount, allocations match running jobs."""
    for node in state.nodes:
        assert all(0 <= f <= MILLI for f in node.gpu_free), node
        assert 0 <= node.cpu_free <= node.cpu_milli, node
        assert 0 <= node.mem_free <= node.mem_mib, node
    for model, index in state.models.items():
        nodes = [n for n in state.nodes if n.gpu_model == model and n.gpus and n.up]  # down nodes leave the index
        assert index.free_whole == sum(n.free_whole for n in nodes)
        assert index.free_milli == sum(sum(n.gpu_free) for n in nodes)
        for n in nodes:
            assert n.idx in index.by_whole[n.free_whole]
            assert (n.max_free > 0) == (n.idx in index.open)
        for n in state.nodes:
            if n.gpu_model == model and not n.up:
                assert n.idx not in index.open and all(n.idx not in b for b in index.by_whole)
    if engine is not None:
        used_gpu = {n.idx: [0] * n.gpus for n in state.nodes}
        used_cpu = {n.idx: 0 for n in state.nodes}
        for run in engine.running.values():
            j = run.job
            assert len(run.alloc) == j.tasks, "gang is all-or-nothing"
            models = {state.nodes[i].gpu_model for i, _ in run.alloc}
            assert len(models) == 1 or not j.gpu_milli, "a gang uses one GPU model"
            for idx, devices in run.alloc:
                used_cpu[idx] += j.cpu_milli
                for d in devices:
                    used_gpu[idx][d] += MILLI if j.gpu_milli >= MILLI else j.gpu_milli
        for node in state.nodes:
            assert [MILLI - u for u in used_gpu[node.idx]] == node.gpu_free
            assert node.cpu_milli - used_cpu[node.idx] == node.cpu_free
        assert not set(engine.running) & set(engine.pending), "a job is both running and pending"


def start_serve(data_dir, admin_token: str, *args: str, out=None, timeout: float = 20,
                tls: tuple | None = None) -> tuple[subprocess.Popen, str]:
    """A real `altostrat serve` subprocess (with more `args`) on a free loopback port, once
    /healthz answers: (the process, its URL). Its output goes to the file `out`. The caller stops it.
    `tls`: (certificate, key) files to serve HTTPS with; the certificate is trusted to reach it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    if tls:
        args = (*args, "--tls-cert", str(tls[0]), "--tls-key", str(tls[1]))
    out = out or tempfile.TemporaryFile("w+")  # not a pipe: one nobody reads would block the server's log once full
    proc = subprocess.Popen([sys.executable, "-m", "altostrat.cli", "serve", "--port", str(port), "--data-dir",
                             str(data_dir), *args], env={**os.environ, "ALTOSTRAT_ADMIN_TOKEN": admin_token},
                            stdout=out, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            verify = ssl.create_default_context(cafile=str(tls[0])) if tls else True
            if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    out.seek(0)
    raise AssertionError(f"server did not come up: {out.read()}")


def until(what: str, check, timeout: float = 60):
    """Poll `check` until it returns something truthy, and return that; fail naming `what`
    after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
