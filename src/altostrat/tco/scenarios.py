"""The four ways to provision a pool for the same busy intervals, priced over one window.

Each returns a PoolUse: dollars over the window, the curve of nodes powered (for energy
and carbon), and the nodes provisioned. docs/tco.md states the model and its sources.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altostrat.catalog import CatalogError, InstanceType, default_catalog
from altostrat.catalog.power import NodePower, node_power
from altostrat.cluster.state import Node
from altostrat.resources import MILLI
from altostrat.tco.demand import Curve, merge


@dataclass(frozen=True, slots=True)
class PoolPrice:
    """A pool's instance type (its prices) and one node's power model."""

    pool: str
    instance: InstanceType
    power: NodePower | None


@dataclass(frozen=True, slots=True)
class PoolUse:
    """What one scenario provisions in one pool over one window."""

    pool: str
    lifecycle: str  # on-demand, reserved (a committed base plus on-demand above it) or spot
    usd: float
    powered: Curve  # nodes up, drawing at least their static power
    nodes: int  # static: its size; reserved: the committed level; dynamic: the peak of nodes up
    starts: int | None = None  # node starts (dynamic only)


def pool_price(pool: str, node: Node) -> PoolPrice:
    """The catalog type a pool's node was built from, found by its cloud, region and shape.

    Nodes keep price and shape, not their type's name; within a cloud and region the
    embedded catalog has one type per shape.
    """
    if node.cloud is None or node.price_per_s is None:
        raise CatalogError(f"pool {pool!r} names no instance type, so it has no price; give it an instanceType from "
                           "the catalog (`altostrat catalog list`)")
    matches = [it for it in default_catalog().find(cloud=node.cloud, region=node.region, gpu_model=node.gpu_model or "cpu")
               if it.gpu_count == node.gpus and it.vcpus * MILLI == node.cpu_milli
               and round(it.memory_gib * 1024) == node.mem_mib]
    if len(matches) != 1:
        raise CatalogError(f"pool {pool!r}: {len(matches)} catalog types have its shape in {node.cloud} {node.region}; "
                           "TCO needs exactly one")
    return PoolPrice(pool, matches[0], node_power(node.gpu_model, node.gpus, node.cpu_milli, node.region))


def static(pool: str, busy: Curve, price_hr: float, t0: float, t1: float) -> PoolUse:
    """On-demand nodes for the peak of busy nodes, up for the whole window."""
    n = busy.peak()
    return PoolUse(pool, "on-demand", n * price_hr * (t1 - t0) / 3600, Curve.constant(n, t0, t1), n)


def dynamic(pool: str, busy: list[np.ndarray], price_hr: float, boot_s: float, scale_down_s: float,
            lifecycle: str = "on-demand") -> PoolUse:
    """A node is up from `boot_s` before each busy interval until `scale_down_s` after it.

    Idle gaps shorter than boot + scale-down keep the node up (releasing it would not save
    anything); each remaining up-interval is one node start. Billed per second while up.
    """
    up = [merge(iv, boot_s, scale_down_s) for iv in busy]
    powered = Curve.of(up)
    return PoolUse(pool, lifecycle, price_hr * powered.integral() / 3600, powered, powered.peak(),
                   sum(len(u) for u in up))


def reserved_level(powered: Curve, discount: float, t0: float, t1: float) -> int:
    """The committed node count r that minimises r (1 - d) W + ∫ max(0, m(t) - r) dt over the window.

    Raising r by one saves on-demand for the time m > r and costs (1 - d) W: worth it while
    m exceeds r more than a fraction 1 - d of the window (the classic reservation rule).
    The smallest minimiser is taken: a commitment no cheaper is no better.
    """
    seconds = powered.seconds_at_level(t0, t1)
    levels = np.arange(len(seconds))
    # ∫ max(0, m - r) = S1(r) - r S0(r), with S0, S1 the sums over levels k > r of seconds and k x seconds
    s0 = np.append(np.cumsum(seconds[::-1])[::-1][1:], 0.0)
    s1 = np.append(np.cumsum((levels * seconds)[::-1])[::-1][1:], 0.0)
    cost = levels * (1 - discount) * (t1 - t0) + s1 - levels * s0
    best = cost.min()
    return int(np.flatnonzero(cost <= best + 1e-9 * max(1.0, abs(best)))[0])  # float ties go to the smaller r


def reserved(pool: str, dynamic_use: PoolUse, price_hr: float, discount: float, t0: float, t1: float) -> PoolUse:
    """A committed base of r nodes for the window (paid and up whether busy or not), dynamic on-demand above it."""
    r = reserved_level(dynamic_use.powered, discount, t0, t1)
    powered = dynamic_use.powered.with_floor(r, t0, t1)
    burst = powered.integral() - r * (t1 - t0)  # on-demand node-seconds above the committed base
    usd = price_hr * (r * (1 - discount) * (t1 - t0) + burst) / 3600
    return PoolUse(pool, "reserved", usd, powered, r)
