"""Power model of a node: idle and full-load watts per GPU and per vCPU, times the region's PUE.

Facts written here, each with its source; docs/energy.md explains the model. A node's draw
is linear in what is allocated on it: a GPU whose allocated share is s (milli / 1000)
draws idle + s × (max − idle), a vCPU likewise by allocated milli-cores. Allocation stands
in for utilization because the simulator knows nothing finer, so a fully allocated GPU is
charged its TDP: an upper bound (the measured H100 profile draws 280–510 W of its 700 W on
real training steps).
"""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.resources import MILLI

# GPU model -> (idle W, max W, source). Max is the board TDP from NVIDIA's datasheet. Idle:
# measured where we have a profile; otherwise IDLE_FRACTION of TDP (below).
IDLE_FRACTION = 0.10  # measured idle / power limit: H100 70.5 / 700 = 0.101, H200 77.9 / 700 = 0.111
_SHEET = "NVIDIA datasheet TDP; idle 10 % of TDP (IDLE_FRACTION)"
_H100 = "../shared/data/gpu-profiles/h100-80gb-hbm3.json info.idle_power_w and info.power_limit_w (measured 2026-11-23)"
_H200 = "../shared/data/gpu-profiles/h200.json info.idle_power_w and info.power_limit_w (measured 2026-11-23)"
GPU_WATTS: dict[str, tuple[float, float, str]] = {
    "H100": (70.54126666666666, 700.0, _H100),
    "H200": (77.86153333333333, 700.0, _H200),
    "A100": (40.0, 400.0, f"A100 SXM4 40GB: 400 W; {_SHEET}"),
    "A100-80GB": (40.0, 400.0, f"A100 SXM4 80GB: 400 W; {_SHEET}"),
    "V100": (30.0, 300.0, f"Tesla V100 SXM2: 300 W; {_SHEET}"),
    "P100": (25.0, 250.0, f"Tesla P100 PCIe: 250 W (GCP attaches PCIe P100); {_SHEET}"),
    "K80": (15.0, 150.0, f"Tesla K80: 300 W per board of two GK210 GPUs, clouds count each GPU: 150 W; {_SHEET}"),
    "T4": (7.0, 70.0, f"T4: 70 W; {_SHEET}"),
    "L4": (7.2, 72.0, f"L4: 72 W; {_SHEET}"),
    "A10G": (15.0, 150.0, f"A10: 150 W (A10G is AWS's A10; NVIDIA publishes no separate sheet); {_SHEET}"),
}

# Watts per vCPU at idle and at full load: Cloud Carbon Footprint's AWS averages over the
# SPECpower_ssj2008 results of AWS's CPU microarchitectures (cloudcarbonfootprint.org/docs/methodology,
# "Compute"); its GCP (0.71 / 4.26) and Azure (0.78 / 3.76) figures are within 20 %.
CPU_IDLE_W, CPU_MAX_W = 0.74, 3.5

# PUE per region. us-central1: Google's figure in ../shared/data/carbon/static/cloudProviders_datacenters.csv
# (line 7, from google.com/about/datacenters/efficiency, 2020). The AWS and Azure regions of
# the embedded catalog: Cloud Carbon Footprint's provider averages (AWS 1.135, Azure 1.185,
# same methodology page, "Power Usage Effectiveness"). Other GCP regions of that csv that give one.
REGION_PUE: dict[str, float] = {
    "us-central1": 1.11, "us-west1": 1.11, "us-east1": 1.11, "europe-west1": 1.08, "europe-north1": 1.09,
    "asia-southeast1": 1.15, "asia-east1": 1.13,
    "us-east-1": 1.135,
    "eastus": 1.185, "westus2": 1.185,
}
# Any other region, or none: the hyperscalers' figure above that is least favourable (Azure).
DEFAULT_PUE = 1.185


@dataclass(frozen=True, slots=True)
class NodePower:
    """A node's facility draw (PUE included): constant part, and watts per allocated milli-unit."""

    static_w: float  # everything idle
    gpu_w_per_milli: float  # per allocated milli-GPU, above idle
    cpu_w_per_milli: float  # per allocated milli-vCPU, above idle
    region: str | None


def node_power(gpu_model: str | None, gpus: int, cpu_milli: int, region: str | None) -> NodePower | None:
    """The node's power model; None when its GPU model has no watts in GPU_WATTS."""
    idle_g = max_g = 0.0
    if gpus:
        watts = GPU_WATTS.get(gpu_model or "")
        if watts is None:
            return None
        idle_g, max_g = watts[0], watts[1]
    pue = REGION_PUE.get(region or "", DEFAULT_PUE)
    return NodePower(
        static_w=pue * (gpus * idle_g + cpu_milli / MILLI * CPU_IDLE_W),
        gpu_w_per_milli=pue * (max_g - idle_g) / MILLI,
        cpu_w_per_milli=pue * (CPU_MAX_W - CPU_IDLE_W) / MILLI,
        region=region,
    )


def cluster_power(nodes) -> tuple[NodePower | None, ...]:
    """Per node index, for SimResult.power."""
    return tuple(node_power(n.gpu_model, n.gpus, n.cpu_milli, n.region) for n in nodes)
