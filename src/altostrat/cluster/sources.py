"""Clusters read from real node lists (each module registers with @cluster_source)."""

from altostrat.cluster import alibaba  # noqa: F401
