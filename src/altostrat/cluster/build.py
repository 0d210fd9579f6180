"""Turn a Cluster spec (or a built-in name) into nodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from altostrat.catalog.regions import jurisdiction
from altostrat.catalog.spot import SpotHazard, spot_hazard
from altostrat.cluster.state import ClusterState, Node
from altostrat.resources import MILLI
from altostrat.spec.load import SpecError, load_one
from altostrat.spec.schema import ClusterBody, ClusterDoc, Metadata, PoolSpec


@dataclass(frozen=True)
class ClusterSource:
    name: str
    summary: str
    build: Callable[[str], list[Node]]  # argument: what follows "name:" (may be empty)


CLUSTER_SOURCES: dict[str, ClusterSource] = {}

NO_HAZARD = SpotHazard(0.0, 0.0, 0.0)  # on-demand and reserved nodes are never revoked


def cluster_source(name: str, summary: str):
    def wrap(fn):
        CLUSTER_SOURCES[name] = ClusterSource(name, summary, fn)
        return fn

    return wrap


def nodes_from_doc(doc: ClusterDoc) -> list[Node]:
    nodes: list[Node] = []
    for pool in doc.spec.pools:
        shape = pool.shape
        price_per_s = None if shape.price_hr is None else shape.price_hr / 3600.0
        spot = pool.lifecycle == "spot"
        hazard = spot_hazard(shape.cloud, pool.revocations_per_hour, pool.notice_s) if spot else NO_HAZARD
        scale = pool.autoscale
        for i in range(pool.nodes):
            elastic = scale is not None and i >= scale.min_nodes
            nodes.append(
                Node(
                    idx=len(nodes),
                    name=f"{pool.name}-{i}",
                    pool=pool.name,
                    gpu_model=shape.gpu_model,
                    gpus=shape.gpus,
                    cpu_milli=round(shape.cpu * MILLI),
                    mem_mib=round(shape.memory_gib * 1024),
                    region=shape.region,
                    tier=pool.tier,
                    price_per_s=price_per_s,
                    cloud=shape.cloud,
                    spot=spot,
                    jurisdiction=jurisdiction(shape.region),
                    revocations_per_hour=hazard.per_hour,
                    notice_s=hazard.notice_s,
                    mean_down_s=hazard.mean_down_s,
                    elastic=elastic,
                    up=not elastic,
                    boot_s=scale.boot_s if elastic else 0.0,
                    idle_s=scale.idle_s if elastic else 0.0,
                    instance_type=pool.instance_type,
                )
            )
    return nodes


def _doc(name: str, pools: list[PoolSpec]) -> ClusterDoc:
    return ClusterDoc(api_version="altostrat/v1", kind="Cluster", metadata=Metadata(name=name), spec=ClusterBody(pools=pools))


# Philly's trace keeps about 374 GPUs busy on average over its 109 days; 64 nodes of
# 8 GPUs (512 GPUs) put its average load at about 73 %, inside the 70-80 % we aim for.
# Priced as GCP N1 + 8 P100 (64 vCPUs, 416 GiB; see its catalog entry: GCP itself stops at 4).
PHILLY_LIKE = _doc(
    "philly-like",
    [PoolSpec(name="p100", nodes=64, instance_type="n1-highmem-64+8xP100", region="us-central1", tier="accelerated")],
)

# Gavel's simulated cluster: 36 GPUs each of V100, P100 and K80, as 4-GPU servers: a
# 4-GPU machine of each model from the catalog, each on a cloud that lists the model (the
# catalog has no AWS K80 or P100, no GCP K80 and no Azure P100).
GAVEL_108 = _doc(
    "gavel-108",
    [
        PoolSpec(name=name, nodes=9, instance_type=instance, region=region, tier="accelerated")
        for name, instance, region in (("v100", "p3.8xlarge", "us-east-1"), ("p100", "n1-highmem-32+4xP100", "us-central1"),
                                       ("k80", "Standard_NC24", "westus2"))
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
