"""Turn a Cluster spec (or a built-in name) into nodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from altostrat.cluster.state import ClusterState, Node
from altostrat.resources import MILLI
from altostrat.spec.load import SpecError, load_one
from altostrat.spec.schema import ClusterBody, ClusterDoc, GpuSpec, Metadata, PoolSpec


@dataclass(frozen=True)
class ClusterSource:
    name: str
    summary: str
    build: Callable[[str], list[Node]]  # argument: what follows "name:" (may be empty)


CLUSTER_SOURCES: dict[str, ClusterSource] = {}


def cluster_source(name: str, summary: str):
    def wrap(fn):
        CLUSTER_SOURCES[name] = ClusterSource(name, summary, fn)
        return fn

    return wrap


def nodes_from_doc(doc: ClusterDoc) -> list[Node]:
    nodes: list[Node] = []
    for pool in doc.spec.pools:
        for i in range(pool.nodes):
            nodes.append(
                Node(
                    idx=len(nodes),
                    name=f"{pool.name}-{i}",
                    pool=pool.name,
                    gpu_model=pool.gpu.model if pool.gpu else None,
                    gpus=pool.gpu.count if pool.gpu else 0,
                    cpu_milli=round(pool.cpu * MILLI),
                    mem_mib=round(pool.memory_gib * 1024),
                    region=pool.region,
                    tier=pool.tier,
                )
            )
    return nodes


def _doc(name: str, pools: list[PoolSpec]) -> ClusterDoc:
    return ClusterDoc(api_version="altostrat/v1", kind="Cluster", metadata=Metadata(name=name), spec=ClusterBody(pools=pools))


# Philly's trace keeps about 374 GPUs busy on average over its 109 days; 64 nodes of
# 8 GPUs (512 GPUs) put its average load at about 73 %, inside the 70-80 % we aim for.
PHILLY_LIKE = _doc(
    "philly-like",
    [PoolSpec(name="p100", nodes=64, gpu=GpuSpec(model="P100", count=8), cpu=64, memory_gib=512, tier="accelerated")],
)

# Gavel's simulated cluster: 36 GPUs each of V100, P100 and K80, here as 4-GPU servers.
GAVEL_108 = _doc(
    "gavel-108",
    [
        PoolSpec(name=model.lower(), nodes=9, gpu=GpuSpec(model=model, count=4), cpu=32, memory_gib=244, tier="accelerated")
        for model in ("V100", "P100", "K80")
    ],
)


@cluster_source("philly-like", "64 nodes x 8 P100 (512 GPUs): the Philly trace loads it ~73 % on average")
def _philly_like(arg: str) -> list[Node]:
    return nodes_from_doc(PHILLY_LIKE)


@cluster_source("gavel-108", "36 V100 + 36 P100 + 36 K80 GPUs in 4-GPU servers (Gavel's cluster)")
def _gavel_108(arg: str) -> list[Node]:
    return nodes_from_doc(GAVEL_108)


def load_cluster(spec: str) -> tuple[str, ClusterState]:
    """Resolve a cluster spec: a built-in name, `source:ARG`, or a YAML file."""
    if spec.endswith((".yaml", ".yml")):
        doc = load_one(spec, "Cluster")
        return doc.metadata.name, ClusterState(nodes_from_doc(doc))
    import altostrat.cluster.sources  # noqa: F401  (registers file-based sources)

    name, _, arg = spec.partition(":")
    source = CLUSTER_SOURCES.get(name)
    if source is None:
        known = ", ".join(sorted(CLUSTER_SOURCES))
        raise SpecError(f"--cluster {spec!r}: unknown cluster; use a YAML file or one of: {known}")
    return spec, ClusterState(source.build(arg))
