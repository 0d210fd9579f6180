"""inputs_sha256 changes with every input the run depends on."""

import dataclasses

from altostrat.cluster.state import ClusterState
from altostrat.sim.run import inputs_digest
from tests.helpers import cluster, job, jobs


def test_digest_covers_the_nodes_instance_type():
    work = jobs(job("a", 0, 10))
    base = cluster(("V100", 1, 2))
    typed = ClusterState([dataclasses.replace(n, instance_type="p3.2xlarge") for n in base.nodes])
    assert inputs_digest(work, base) == inputs_digest(work, cluster(("V100", 1, 2)))
    assert inputs_digest(work, base) != inputs_digest(work, typed)
