"""The control plane: `altostrat serve` runs real workloads with the simulator's engine.

    objects.py     the declarative kinds (Tenant, Queue, Pool, Job), validated by pydantic
    store.py       SQLAlchemy tables and every transaction (objects, attempts, audit, tokens)
    migrations/    the alembic migrations that create and evolve the schema
    reconciler.py  one thread: store changes and process exits -> Engine events -> decisions
    quota.py       the per-queue quota gate the reconciler adds to the policy
    executor.py    the local executor: one subprocess per task, logs, limits, signals
    api.py         the FastAPI app under /v1
    auth.py        token roles (admin, tenant, viewer): what each may change and see
    server.py      `altostrat serve`: store, reconciler and uvicorn together
    client.py, cli.py  the HTTP client, the `login` context, the `apply`/`get`/`delete`/`logs`/`cancel`
                   and `tokens` verbs
"""
