"""Placement pieces decide which nodes a job's tasks go to.

A placement piece is a dataclass registered with @register("placement", name, source)
with `place(job, state) -> Plan | None`: a list of (node index, task count) covering all
the job's tasks on nodes of one GPU model (gangs are all-or-nothing), or None when the
job cannot start now. It must only read the state; the engine applies the plan.
"""

from altostrat.policy.autoload import import_all

import_all(__name__, __path__)
