"""Write the event log to Parquet or CSV."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from altostrat.sim.simulator import SimResult


def write_events(result: SimResult, path: Path) -> None:
    table = pa.table(result.log.columns([j.id for j in result.jobs]))
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pcsv.write_csv(table, path)
