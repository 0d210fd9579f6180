"""`altostrat serve`: migrate the store, start the reconciler, serve the API until SIGTERM."""

from __future__ import annotations

import gc
import logging
import os
import signal
import ssl
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from altostrat.service.executor import make_executor
from altostrat.service.database import DatabaseUnavailable, database_url
from altostrat.service.store import Store

SHUTDOWN_S = 5.0  # how long a stop waits for requests in flight


def open_store(data_dir: str | Path, db: str | None) -> Store:
    """The store named by --db, else SQLite in --data-dir, migrated to the latest schema; one
    that cannot be opened is a DatabaseUnavailable naming it (without its password)."""
    store = Store(database_url(data_dir, db))
    try:
        store.upgrade()
    except OperationalError as exc:
        store.close()
        raise DatabaseUnavailable(f"cannot open {shown(store.url)}: {' '.join(str(exc.orig).split())}") from None
    return store


def shown(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class TlsError(Exception):
    """--tls-cert / --tls-key cannot serve HTTPS (a missing file, a key that is not the certificate's)."""


def check_tls(cert: Path, key: Path) -> None:
    """Load the pair as uvicorn will, before anything starts: a bad one is one line naming it."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise TlsError(f"--tls-cert/--tls-key: no file {exc.filename}") from None
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"--tls-cert {cert} / --tls-key {key}: cannot be used for HTTPS ({exc}); give a PEM "
                       "certificate chain and its private key") from None


def serve(host: str, port: int, data_dir: str | Path, db: str | None, policy: str, grace_s: float,
          echo: Callable[[str], None], log_format: str = "text", executor: str = "local",
          executor_options: dict | None = None, tls: tuple[Path, Path] | None = None) -> None:
    """`tls`: (certificate chain, private key) to serve HTTPS; None: plain HTTP."""
    import uvicorn

    from altostrat.policy.registry import parse_policy
    from altostrat.service.api import create_app
    from altostrat.service.observability import configure_logging
    from altostrat.service.reconciler import Reconciler
    from altostrat.service.services import ServiceController

    configure_logging(log_format)
    if log_format == "json":  # stdout keeps only the admin token: a secret stays out of the log pipeline
        token_echo, echo = echo, logging.getLogger("altostrat.serve").info
    else:
        token_echo = echo
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    parse_policy(policy)  # a bad policy fails before anything starts
    if tls is not None:
        check_tls(*tls)
    runner = make_executor(executor, **(executor_options or {}))  # ExecutorError: Ray missing or unreachable
    try:
        store = open_store(data_dir, db)
    except DatabaseUnavailable:
        runner.close()
        raise
    reconciler = Reconciler(store, policy, data_dir, grace_s, runner)
    services = ServiceController(store, reconciler.wake)
    token = store.ensure_admin_token(os.environ.get("ALTOSTRAT_ADMIN_TOKEN"))
    app = create_app(store, lambda: (reconciler.wake(), services.wake()),
                     healthy=lambda: None if reconciler.error is None else f"reconciler stopped: {reconciler.error!r}",
                     explain=reconciler.explain, observer=reconciler.obs, reasons=reconciler.reasons)
    echo(f"store: {shown(store.url)} (schema migrated); data dir {data_dir}")
    echo(f"policy: {policy}")
    echo(runner.describe())
    if token is not None:
        token_echo(f"admin token (shown once; only its SHA-256 is stored): {token}")
    reconciler.start()
    services.start()
    # uvicorn re-raises the signal that stopped it once it is done; handlers that do nothing
    # let the clean-up below run first
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # log_config=None: uvicorn's records go through configure_logging's handler; an open watch
    # stream is cut SHUTDOWN_S after a stop, not awaited to its timeout
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                           log_config=None, timeout_graceful_shutdown=SHUTDOWN_S,
                                           ssl_certfile=tls and str(tls[0]), ssl_keyfile=tls and str(tls[1])))
    # What start-up built (imports, the recovered engine) stays: no collection needs to scan it
    # again, and a young generation of 50,000 objects is collected ~70 times less often than
    # Python's default 700, which cost the submit path about a quarter of its CPU (docs/service.md,
    # "Load and benchmarks"). The service makes few reference cycles; they are still collected.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    echo(f"listening on {'https' if tls else 'http'}://{host}:{port}")
    try:
        server.run()
    finally:
        services.stop()
        reconciler.stop()
        runner.close()
        store.close()
    echo("stopped")
