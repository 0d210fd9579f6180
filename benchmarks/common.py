"""What every benchmark shares: percentiles and the result file format.

Each benchmark writes benchmarks/results/<name>.json:
{"benchmark", "commit", "machine": {"cpus", "python"}, "command", "figures": {name: number},
 "targets": {figure: {"op": ">=" | "<=", "value": number}}, "met": bool}
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
_OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b}


def percentile(sorted_values, q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of an already sorted, non-empty sequence."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def commit() -> str:
    """HEAD's sha when the measured code is committed, else "uncommitted".

    Changes under benchmarks/results/ do not count: writing results must not dirty the run.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", ".", ":(exclude)benchmarks/results"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "uncommitted"
    return "uncommitted" if dirty.stdout.strip() else sha.stdout.strip()


def write_result(name: str, command: str, figures: dict[str, float], targets: dict[str, dict]) -> dict:
    """Check `targets` against `figures`, write results/<name>.json and return what was written."""
    for figure, target in targets.items():
        if figure not in figures:
            raise ValueError(f"target {figure!r} names no figure; figures are: {', '.join(figures)}")
        if target.get("op") not in _OPS or not isinstance(target.get("value"), (int, float)):
            raise ValueError(f"target {figure!r} must be {{'op': '>=' or '<=', 'value': number}}, got {target}")
    met = all(_OPS[t["op"]](figures[f], t["value"]) for f, t in targets.items())
    result = {
        "benchmark": name,
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "command": command,
        "figures": figures,
        "targets": targets,
        "met": met,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def start_serve(data_dir: str, token: str, port: int | None = None, extra: tuple[str, ...] = ()):
    """A real `altostrat serve` on loopback (its output discarded), once /healthz answers 200:
    (the process, its URL, seconds from its spawn to that answer). The caller stops it; pass the
    previous `port` to restart a server on the same address; `extra`: more serve options."""
    import socket
    import sys
    import time

    import httpx

    if port is None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "altostrat.cli", "serve", "--port", str(port), "--data-dir",
                             str(data_dir), *extra], env={**os.environ, "ALTOSTRAT_ADMIN_TOKEN": token},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url, time.perf_counter() - t0
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"altostrat serve exited with {proc.returncode} before answering")
        time.sleep(0.02)
