"""Researchers' own policies: `--plugin file.py:Object`, `--plugin module:Object` and the
`altostrat.policies` entry point group, in process and through the CLI."""

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import cluster, job, jobs

from altostrat.policy import registry
from altostrat.policy.registry import PolicyError, load_plugin, parse_policy, pieces
from altostrat.sim.eventlog import START
from altostrat.sim.simulator import simulate

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "plugin"

LONGEST_FIRST = '''
from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register


@register("order", "myorder", "longest job first (a test plugin)")
@dataclass(frozen=True)
class LongestFirst:
    patience: int = 3
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (-job.duration, job.submit)
'''

# One GPU. a runs 0-10; at 10 the longest waiting job goes first: c (6 s) 10-16, then b
# 16-18. JCTs: a 10, c 16 - 2 = 14, b 18 - 1 = 17; mean 41/3. (fcfs: b 10-12, c 12-18:
# 10, 11 and 16, mean 37/3.)
WORKLOAD = """apiVersion: altostrat/v1
kind: Workload
metadata: {name: tiny}
spec:
  jobs:
    - {name: a, submitS: 0, durationS: 10}
    - {name: b, submitS: 1, durationS: 2}
    - {name: c, submitS: 2, durationS: 6}
"""
CLUSTER = """apiVersion: altostrat/v1
kind: Cluster
metadata: {name: one-gpu}
spec:
  pools:
    - {name: p, nodes: 1, gpu: {model: V100, count: 1}, cpu: 8, memoryGib: 64}
"""


@pytest.fixture
def clean_registry(monkeypatch):
    """Pieces registered by a test vanish afterwards; entry points are looked up afresh."""
    import altostrat.policy  # noqa: F401  (built-ins first, so the copy holds them)

    monkeypatch.setattr(registry, "_REGISTRY", {kind: dict(p) for kind, p in registry._REGISTRY.items()})
    monkeypatch.setattr(registry, "_entry_points_loaded", False)


@pytest.fixture
def files(tmp_path):
    (tmp_path / "longest.py").write_text(LONGEST_FIRST)
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    (tmp_path / "c.yaml").write_text(CLUSTER)
    return tmp_path


def altostrat(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "altostrat.cli", *map(str, args)], capture_output=True, text=True, timeout=120, env=env
    )


# -- through the CLI ---------------------------------------------------------------------


def test_plugin_file_order_runs_in_simulate_and_shows_in_policies_list(files):
    plugin = f"{files / 'longest.py'}:LongestFirst"
    out = altostrat("simulate", "--workload", files / "w.yaml", "--cluster", files / "c.yaml",
                    "--plugin", plugin, "--policy", "myorder[patience=5]", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["policy"] == "myorder[patience=5]"
    assert result["metrics"]["jobs_completed"] == 3
    assert result["metrics"]["avg_jct_s"] == pytest.approx(41 / 3)

    listing = altostrat("policies", "list", "--plugin", plugin)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if "myorder" in line)
    assert "patience=3" in row and "longest job first (a test plugin)" in row


def test_plugin_file_order_runs_in_compare_worker_processes(files):
    out = altostrat("compare", "--workload", files / "w.yaml", "--cluster", files / "c.yaml",
                    "--plugin", f"{files / 'longest.py'}:LongestFirst", "--policies", "myorder,fcfs",
                    "--workers", "2", "--out", files / "out")
    assert out.returncode == 0, out.stderr
    results = {r["policy"]: r["metrics"]["avg_jct_s"] for r in json.loads((files / "out" / "results.json").read_text())}
    assert results == {"myorder": pytest.approx(41 / 3), "fcfs": pytest.approx(37 / 3)}


def test_broken_plugin_fails_with_its_file_and_line(files):
    bad = files / "bad.py"
    bad.write_text("import math\n\nBROKEN = math.sqrt(-1)\n")
    out = altostrat("simulate", "--plugin", f"{bad}:Thing", "--policy", "fcfs", "--json")
    assert out.returncode == 2
    squeeze = lambda text: "".join(text.split())  # noqa: E731  (rich wraps long lines)
    assert squeeze(f"{bad}:3: ValueError: math domain error") in squeeze(out.stderr)
    assert out.stdout == ""


# -- load_plugin in process -----------------------------------------------------------------


def test_plugin_file_registers_its_piece_and_can_be_loaded_twice(files, clean_registry):
    spec = f"{files / 'longest.py'}:LongestFirst"
    load_plugin(spec)
    load_plugin(spec)  # compare validates in the parent, then each worker loads it again
    policy = parse_policy("myorder[patience=7]+first-fit")
    assert type(policy.order).__name__ == "LongestFirst" and policy.order.patience == 7
    assert "myorder" in pieces("order")


def test_plugin_file_named_like_a_stdlib_module_does_not_shadow_it(tmp_path, clean_registry):
    (tmp_path / "json.py").write_text(LONGEST_FIRST)
    load_plugin(f"{tmp_path / 'json.py'}:LongestFirst")
    assert json.dumps([1]) == "[1]" and sys.modules["json"] is json


@pytest.mark.parametrize(
    "source, spec, message",
    [
        (None, "nocolon", "write it as module:object or file.py:object"),
        (None, "{dir}/missing.py:X", "file {dir}/missing.py does not exist"),
        ("def broken(:\n", "{file}:X", "{file}:1: SyntaxError"),
        ("x = 1\ny = 2\nz = x / 0\n", "{file}:X", "running {file} failed: {file}:3: ZeroDivisionError: division by zero"),
        (LONGEST_FIRST, "{file}:Nope", "has no attribute 'Nope'; it registers: LongestFirst"),
        (LONGEST_FIRST + "\ndef helper():\n    pass\n", "{file}:helper", "helper is not a registered policy piece"),
        (LONGEST_FIRST.replace('"myorder"', '"fcfs"'), "{file}:LongestFirst",
         "order policy 'fcfs' is already registered by altostrat.policy.order.fcfs.FirstComeFirstServed"),
        (None, "no_such_plugin_module:Obj", "no module 'no_such_plugin_module' on the Python path"),
    ],
)
def test_plugin_errors_name_the_problem_and_the_fix(tmp_path, clean_registry, source, spec, message):
    file = tmp_path / "plug.py"
    if source is not None:
        file.write_text(source)
    fill = {"dir": tmp_path, "file": file}
    with pytest.raises(PolicyError) as err:
        load_plugin(spec.format(**fill))
    assert message.format(**fill) in str(err.value)


def test_plugin_module_whose_dependency_is_missing_says_which(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "needsdep.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PolicyError) as err:
        load_plugin("needsdep:Thing")
    assert "importing needsdep failed" in str(err.value)
    assert "No module named 'not_installed_dependency_xyz'" in str(err.value)


# -- the altostrat.policies entry point group ----------------------------------------------


def install_fake_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """What pip leaves behind: a .dist-info folder whose entry_points.txt names the pieces."""
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{registry.ENTRY_POINT_GROUP}]\n{lines}")


def test_entry_point_pieces_are_registered_by_name(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "tinyplugin.py").write_text(LONGEST_FIRST.replace('"myorder"', '"tiny"'))
    install_fake_distribution(tmp_path, "altostrat-tiny", {"tiny": "tinyplugin:LongestFirst"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "tiny" in pieces("order")
    assert parse_policy("tiny+spread").order.key is not None


def test_broken_entry_point_names_the_package(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "brokenplugin.py").write_text("raise RuntimeError('cannot start')\n")
    install_fake_distribution(tmp_path, "altostrat-broken", {"broken": "brokenplugin:Thing"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PolicyError) as err:
        pieces("order")
    text = str(err.value)
    assert "entry point 'broken' = 'brokenplugin:Thing'" in text and "package altostrat-broken" in text
    assert "RuntimeError: cannot start" in text


# -- the examples in examples/plugin ------------------------------------------------------------


def test_example_package_declares_its_piece_in_the_entry_point_group():
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    assert project["project"]["entry-points"][registry.ENTRY_POINT_GROUP] == {
        "srsf": "altostrat_example_policies:ShortestRemainingService"
    }


def test_example_package_once_installed_is_found_without_any_flag(tmp_path, files):
    # Installed = its code importable + its entry points in a .dist-info (as pip would do).
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())
    install_fake_distribution(tmp_path / "site", "altostrat-example-policies",
                              project["project"]["entry-points"][registry.ENTRY_POINT_GROUP])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(EXAMPLE / "src")])}
    # SRSF on one GPU: at 1 b (2 s x 1 GPU) has less service left than a (9 s): b
    # preempts a and runs 1-3; c (6 s) then beats a (9 s): 3-9; a resumes: 9-18.
    # JCTs: b 2, c 7, a 18; mean 9.
    out = altostrat("simulate", "--workload", files / "w.yaml", "--cluster", files / "c.yaml",
                    "--policy", "srsf", "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["metrics"]["avg_jct_s"] == pytest.approx(9)
    assert json.loads(out.stdout)["metrics"]["preemptions"] == 1


def test_example_single_file_plugin_runs(clean_registry):
    load_plugin(f"{EXAMPLE / 'fewest_gpus.py'}:FewestGpusFirst")
    # Two GPUs. a (2 GPUs) runs 0-10; at 10 c (1 GPU) goes before the older b (2 GPUs):
    # c 10-12, then b 12-17.
    w = jobs(job("a", 0, 10, gpus=2), job("b", 1, 5, gpus=2), job("c", 2, 2, gpus=1))
    r = simulate(w, cluster(("V100", 2, 1)), parse_policy("fewest-gpus"))
    start = {r.jobs[j].id: t for t, k, j in zip(r.log.time, r.log.kind, r.log.job) if k == START}
    assert start == {"a": 0, "c": 10, "b": 12}
