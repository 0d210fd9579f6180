"""Gavel job traces: `gavel:PATH[#throughputs=PATH]` (Narayanan et al., OSDI'20).

PATH is a `.trace` file or a folder of them (e.g. ../shared/data/traces/gavel/msr-seed0,
one file per Philly VC). Rows are tab-separated without a header: job_type, command,
num_steps_arg, needs_data_dir, total_steps, arrival_time (s from the trace start, shared
by every file of a folder), scale_factor (GPUs). A job's run time and per-GPU-model speeds
come from Gavel's measured throughputs (simulation_throughputs.json).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

from altostrat.resources import MILLI
from altostrat.workload.job import Job
from altostrat.workload.loaders.synthetic import CPU_PER_GPU_MILLI, MEM_PER_GPU_MIB
from altostrat.workload.sources import TraceError, WorkloadContext, parse_options, workload_source

THROUGHPUTS = "simulation_throughputs.json"
MODELS = {"v100": "V100", "p100": "P100", "k80": "K80"}  # Gavel's GPU types -> gavel-108's model names
REFERENCE = "V100"  # durations are run times on this model; its speed is 1.0
COLUMNS = ("job_type", "command", "num_steps_arg", "needs_data_dir", "total_steps", "arrival_time", "scale_factor")
# The numeric columns a row needs: (column, type, least valid value, what a bad value is told).
NUMBERS = (
    ("total_steps", int, 1, "must be a whole number of steps > 0"),
    ("arrival_time", float, 0.0, "must be a number of seconds >= 0"),
    ("scale_factor", int, 1, "must be a whole number of GPUs > 0"),
)


class Throughputs:
    """Solo throughput (iterations/s) per (job type, gang size) and GPU model.

    The table covers gang sizes 1, 2, 4 and 8 (only 1 for some job types). A gang size it
    lacks is scaled linearly from the nearest covered size below: throughput(n) =
    throughput(c) * n / c, i.e. perfect data-parallel scaling beyond what was measured.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise TraceError(f"gavel: cannot read throughputs {path}: {exc}") from None
        missing = [t for t in MODELS if t not in raw]
        if missing:
            raise TraceError(f"gavel: {path} lacks GPU types {', '.join(missing)}; it needs {', '.join(MODELS)}")
        self.table: dict[tuple[str, int], dict[str, float]] = {}
        for gpu_type, model in MODELS.items():
            for key, entry in raw[gpu_type].items():
                try:
                    job_type, scale = ast.literal_eval(key)
                    self.table.setdefault((str(job_type), int(scale)), {})[model] = float(entry["null"])
                except (ValueError, TypeError, SyntaxError, KeyError):
                    raise TraceError(
                        f"gavel: {path}: entry {gpu_type}.{key} must be keyed \"(job_type, scale_factor)\" "
                        'and hold {"null": iterations per second}'
                    ) from None
        self.sizes: dict[str, list[int]] = {}
        for job_type, scale in sorted(self.table):
            self.sizes.setdefault(job_type, []).append(scale)
        self._cache: dict[tuple[str, int], tuple[float, dict[str, float], tuple[str, ...] | None] | str] = {}

    def lookup(self, job_type: str, gpus: int) -> tuple[float, dict[str, float], tuple[str, ...] | None] | str:
        """(seconds per step on the reference model, speeds, allowed models or None), or why not."""
        key = (job_type, gpus)
        if key not in self._cache:
            self._cache[key] = self._compute(job_type, gpus)
        return self._cache[key]

    def _compute(self, job_type: str, gpus: int):
        sizes = self.sizes.get(job_type)
        if sizes is None:
            return f"job type not in {self.path.name}"
        covered = max((s for s in sizes if s <= gpus), default=None)
        if covered is None:
            return f"no throughput for {gpus} GPUs or fewer in {self.path.name}"
        solo = self.table[(job_type, covered)]
        reference = solo.get(REFERENCE, 0.0)
        if not reference > 0:
            return f"no {REFERENCE} throughput in {self.path.name}"
        # the gang-size scaling cancels in the ratios; throughput 0 means the job does not
        # run on that model (out of memory in Gavel's measurements), so it is not allowed
        speeds = {m: tp / reference for m, tp in solo.items() if tp > 0}
        allowed = None if len(speeds) == len(MODELS) else tuple(sorted(speeds))
        return covered / (reference * gpus), speeds, allowed


def find_throughputs(path: Path) -> Path:
    """simulation_throughputs.json in the trace's folder or the folder above it."""
    folder = path if path.is_dir() else path.parent
    for candidate in (folder / THROUGHPUTS, folder.parent / THROUGHPUTS):
        if candidate.is_file():
            return candidate
    raise TraceError(
        f"gavel:{path}: no {THROUGHPUTS} in {folder} or {folder.parent}; name it with gavel:{path}#throughputs=PATH"
    )


def read_trace_file(path: Path, table: Throughputs, ctx: WorkloadContext) -> list[Job]:
    """One .trace file; the file's stem (a Philly VC id) is the tenant and prefixes job ids."""
    try:
        with path.open(encoding="utf-8") as fh:
            return _read_rows(fh, path, table, ctx)
    except UnicodeDecodeError as exc:
        raise TraceError(f"gavel: {path} is not UTF-8 text ({exc}); name a Gavel .trace file") from None


def _read_rows(fh, path: Path, table: Throughputs, ctx: WorkloadContext) -> list[Job]:
    tenant = path.stem
    jobs: list[Job] = []
    for line_no, line in enumerate(fh, start=1):
        if not line.strip():
            continue
        row = line.rstrip("\r\n").split("\t")
        where = f"{path}, line {line_no}"
        if len(row) != len(COLUMNS):
            ctx.bad_row(where, "row", f"has {len(row)} tab-separated values; a Gavel trace row has {len(COLUMNS)}")
            continue
        job_type = row[0]
        numbers = _numbers(row, where, ctx)
        if numbers is None:
            continue
        steps, arrival, gpus = numbers
        found = table.lookup(job_type, gpus)
        if isinstance(found, str):
            ctx.bad_row(where, "job_type", found)
            continue
        seconds_per_step, speeds, allowed = found
        jobs.append(Job(
            id=f"{tenant}-{line_no}", submit=arrival, duration=steps * seconds_per_step, tasks=gpus,
            gpu_milli=MILLI, cpu_milli=CPU_PER_GPU_MILLI, mem_mib=MEM_PER_GPU_MIB, gpu_models=allowed,
            speeds=speeds, tenant=tenant, job_type=job_type,
        ))
    return jobs


def _numbers(row: list[str], where: str, ctx: WorkloadContext) -> list | None:
    """The row's NUMBERS, typed; None (after ctx.bad_row) at the first bad one."""
    values = []
    for name, kind, least, reason in NUMBERS:
        try:
            value = kind(row[COLUMNS.index(name)])
        except ValueError:
            value = math.nan
        if not least <= value < math.inf:  # NaN fails too
            ctx.bad_row(where, name, reason)
            return None
        values.append(value)
    return values


@workload_source("gavel", "gavel:PATH[#throughputs=PATH]", "Gavel .trace file or folder, speeds from its throughput table")
def gavel(arg: str, ctx: WorkloadContext) -> list[Job]:
    path_text, _, opts_text = arg.partition("#")
    if not path_text:
        raise TraceError("gavel: name a .trace file or a folder of them, as gavel:PATH[#throughputs=PATH]")
    path = Path(path_text)
    opts = parse_options(opts_text, {"throughputs": str}, f"gavel:{arg}")
    if path.is_dir():
        files = sorted(path.glob("*.trace"))
        if not files:
            raise TraceError(f"gavel:{arg}: {path} holds no .trace files")
    elif path.is_file():
        files = [path]
    else:
        raise TraceError(f"gavel:{arg}: {path} is neither a .trace file nor a folder")
    table = Throughputs(Path(opts["throughputs"]) if "throughputs" in opts else find_throughputs(path))
    return [job for f in files for job in read_trace_file(f, table, ctx)]
