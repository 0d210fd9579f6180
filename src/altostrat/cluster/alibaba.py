"""The Alibaba GPU 2023 cluster: the 1,523 real nodes of openb_node_list_all_node.csv.

Columns sn,cpu_milli,memory_mib,gpu,model; model is empty on CPU-only nodes, and G1/G2/G3
are GPU types Alibaba did not disclose. Nodes keep their CPU and memory, since pods ask
for all three.
"""

from __future__ import annotations

import csv
from pathlib import Path

from altostrat.cluster.build import cluster_source
from altostrat.cluster.state import Node
from altostrat.spec.load import SpecError

DEFAULT_NODE_LIST = "openb_node_list_all_node"
COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
USAGE = "alibaba-v2023:DIR[#NODE_LIST]"


@cluster_source("alibaba-v2023", "the 1,523 nodes (6,212 GPUs, 7 models) of the Alibaba GPU 2023 trace; DIR[#NODE_LIST]")
def alibaba_v2023(arg: str) -> list[Node]:
    folder, _, name = arg.partition("#")
    if not folder:
        raise SpecError(f"{USAGE}: give the trace folder, e.g. alibaba-v2023:../shared/data/traces/alibaba-gpu-v2023")
    root = Path(folder)
    path = root / f"{(name.strip() or DEFAULT_NODE_LIST).removesuffix('.csv')}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in root.glob("openb_node_list_*.csv"))) or "none"
        raise SpecError(f"{USAGE}: no node list {path.name} in {root}; node lists there: {known}")
    return read_nodes(path)


def read_nodes(path: Path) -> list[Node]:
    nodes: list[Node] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise SpecError(f"{path}:1: missing column(s) {', '.join(missing)}; a node list has {','.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            values = {}
            for key in ("cpu_milli", "memory_mib", "gpu"):
                text = (row[key] or "").strip()
                if not text.isdigit():
                    raise SpecError(f"{where}: field {key!r}: {text!r} must be a whole number >= 0")
                values[key] = int(text)
            model = (row["model"] or "").strip() or None
            if values["gpu"] and model is None:
                raise SpecError(f"{where}: field 'model': empty on a node with {values['gpu']} GPUs; name the GPU model")
            if not values["gpu"] and model is not None:
                raise SpecError(f"{where}: field 'gpu': 0 on a node of GPU model {model}; give its GPU count")
            name = (row["sn"] or "").strip() or f"node-{len(nodes)}"
            nodes.append(Node(len(nodes), name, model or "cpu", model, values["gpu"], values["cpu_milli"],
                              values["memory_mib"]))
    if not nodes:
        raise SpecError(f"{path}: the node list is empty")
    return nodes
