"""Order pieces decide which pending job the engine tries next.

An order piece is a dataclass registered with @register("order", name, source) that has

* `key(job, engine, now) -> tuple`: smaller keys go first (ties broken by the job index);
* class attributes `dynamic` (keys change with time or state, so the queue is re-sorted on
  every pass) and `preemptive` (the order preempts by itself, e.g. LAS);
* optionally `wakeup(engine, now) -> float | None`: the next time a key changes on its
  own (e.g. a running job crosses a LAS threshold), so the simulator wakes the engine then;
* optionally, for dynamic orders, `ordered(engine, now)`: an iterator over the pending jobs
  used instead of sorting by key, for orders whose next choice depends on the jobs the
  same pass has just started (DRF re-reads tenant shares after every start);
* optionally `enqueued(job, engine)` and `dequeued(job, engine)`, called after the engine
  adds a job to or removes it from `pending`, for orders that keep their own view of the
  queue (DRF's per-tenant FCFS queues) instead of rebuilding it on every pass;
* optionally `bind(context)`, `started(job, run, engine, now)` and `stopped(job, run, engine,
  now)`, as for gates (policy/gate): cost-fair keeps each tenant's spend with them.

Orders read the engine's views: `pending`, `running`, `attained_service(job, now)`,
`remaining(job, now)`, `tenant_alloc`, `tenant_jobs`, `last_run` and `state`.
"""

from altostrat.policy.autoload import import_all

import_all(__name__, __path__)
