"""Gate pieces hold a pending job back although it would fit: a budget spent, a cleaner hour ahead.

A gate piece is a dataclass registered with @register("gate", name, source) and used as
`+NAME[params]` after the placement. It has

* `hold(job, engine, now) -> float | None`: None lets the job start now; a time asks the
  engine to look again then (the simulator wakes it); `math.inf` waits for the next event;
* optionally `bind(context)`, called once before a run with the run's `PolicyContext`
  (engine.py): the calendar and the carbon data it may read;
* optionally `started(job, run, engine, now)` and `stopped(job, run, engine, now)`,
  called after a job of the engine starts or stops, for gates that keep accounts;
* optionally `refuse(job, engine) -> str | None`, asked at submission: a reason rejects a job
  the gate would hold forever;
* optionally `reclaim(job, engine, now) -> list[Run]`, asked under a policy that preempts when
  this gate alone holds the job: running jobs whose stop would make the gate let it start, just
  enough, in the order to preempt them ([] if none would). The engine preempts them through
  its preemption path (reason `RECLAIMED`) if the job then places, and starts it; else nothing.

A held job does not block the queue behind it: the pass goes on to the next job.
Gates read the same engine views as orders, and `engine.run_cost(run, now)`.
"""

from altostrat.policy.autoload import import_all

import_all(__name__, __path__)
