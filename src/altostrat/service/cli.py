"""`altostrat serve`, `altostrat db upgrade`, the client verbs, `login` and `tokens`, registered
on the main app.

The service's dependencies (FastAPI, SQLAlchemy, httpx) are imported inside the commands, so
that the simulator's commands start as fast as before.
"""

from __future__ import annotations

import json
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from altostrat.service.text import column_widths, row_line, table, when

ServerOpt = Annotated[Optional[str], typer.Option(
    "--server", envvar="ALTOSTRAT_SERVER", show_default=False,
    help="the service's URL (default: the `altostrat login` context's, else http://127.0.0.1:8080)")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="ALTOSTRAT_TOKEN", show_default=False,
                                                 help="an API token (default: the login context's, for its server)")]
DataDirOpt = Annotated[Path, typer.Option("--data-dir", help="SQLite database, job logs and working folders")]
DbOpt = Annotated[Optional[str], typer.Option(
    "--db", help="postgresql://USER[:PASSWORD]@HOST[:PORT]/DB (or sqlite:///PATH) instead of SQLite in --data-dir")]

DEFAULT_DATA_DIR = Path("altostrat-data")


class Output(str, Enum):
    table = "table"
    json = "json"


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table or json")]


class LogFormat(str, Enum):
    text = "text"
    json = "json"


db_app = typer.Typer(help="The control plane's database.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens: create, list and revoke them (an admin token's calls).",
                         no_args_is_help=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)


def _client(server: str | None, token: str | None):
    from altostrat.service.client import ClientError, connect

    try:
        return connect(server, token)
    except ClientError as exc:
        fail(str(exc))


def _kind(text: str) -> str:
    from altostrat.service.objects import KINDS, kind_of

    kind = kind_of(text)
    if kind is None:
        fail(f"unknown kind {text!r}; one of: {', '.join(k.lower() for k in KINDS)}")
    return kind


def _columns(kind: str, obj: dict) -> dict[str, str]:
    spec, status = obj["spec"], obj["status"]
    if kind == "Job":
        return {"NAME": obj["metadata"]["name"], "QUEUE": spec["queue"], "STATE": status["state"],
                "ATTEMPTS": str(status.get("attempts", 0)), "EXIT": str(status.get("exitCode", "")),
                "REASON": status.get("reason", "")}
    if kind == "Queue":
        quota = ",".join(f"{k}={v:g}" for k, v in spec["quota"].items() if v is not None) or "none"
        return {"NAME": obj["metadata"]["name"], "TENANT": spec["tenant"], "QUOTA": quota, "WEIGHT": f"{spec['weight']:g}"}
    if kind == "Service":
        load = status.get("load")
        return {"NAME": obj["metadata"]["name"], "QUEUE": spec["queue"], "READY": str(status.get("ready", 0)),
                "DESIRED": str(status.get("desired", "")), "RANGE": f"{spec['minReplicas']}-{spec['maxReplicas']}",
                "LOAD": "-" if load is None else f"{load:g}", "TARGET": f"{spec['targetLoad']:g}",
                "RESTARTS": str(status.get("restarts", 0)), "REASON": status.get("reason", "")}
    if kind == "Pool":
        gpu = spec.get("gpu")
        return {"NAME": obj["metadata"]["name"], "NODES": str(spec["nodes"]),
                "GPU": f"{gpu['count']} x {gpu['model']}" if gpu else "-", "CPU": f"{spec['cpu']:g}",
                "MEMORY_GIB": f"{spec['memoryGib']:g}"}
    return {"NAME": obj["metadata"]["name"]}


def _watch(client, kind: str, name: str | None, output: Output) -> None:
    """`get -w`: the objects, then each change, until Ctrl-C. Each stream the server sends starts
    with every object; after the first, the differences from what was shown are the changes
    made while no stream was open (deletions too)."""
    shown: dict[str, dict] = {}  # name -> the object as last printed
    widths: dict[str, int] | None = None

    def emit(events: list[tuple[str, dict]]) -> None:
        nonlocal widths
        if output is Output.json:
            for kind_of_change, obj in events:
                print(json.dumps({"type": kind_of_change, "object": obj}), flush=True)
            return
        rows = [{"EVENT": e, **_columns(kind, o)} for e, o in events]
        if rows and widths is None:  # the first rows set the columns' widths; a longer value later overflows
            widths = column_widths(rows)
            print(row_line({k: k for k in widths}, widths))
        for row in rows:
            print(row_line(row, widths))
        sys.stdout.flush()

    first = True
    while True:  # each stream ends after the server's timeout; the next one starts from every object
        initial: dict[str, dict] | None = {}
        for event in client.watch(kind, name):
            kind_of_change = event["type"]
            if kind_of_change == "SYNCED":
                events = [("ADDED" if n not in shown else "MODIFIED", o) for n, o in initial.items()
                          if n not in shown or shown[n]["metadata"]["resourceVersion"] != o["metadata"]["resourceVersion"]]
                events += [("DELETED", o) for n, o in shown.items() if n not in initial]
                if first and not events and output is Output.table:
                    print("no objects yet; waiting for changes", flush=True)
                emit(events)
                shown, initial, first = initial, None, False
            elif kind_of_change in ("ADDED", "MODIFIED", "DELETED"):
                obj_name = event["object"]["metadata"]["name"]
                if initial is not None:
                    initial[obj_name] = event["object"]
                elif kind_of_change == "DELETED":
                    emit([("DELETED", shown.pop(obj_name, event["object"]))])
                else:
                    shown[obj_name] = event["object"]
                    emit([(kind_of_change, event["object"])])


def _description(d: dict) -> str:
    """`describe job` as a table: the job, why it is pending, then its attempts' tasks."""
    lines = [f"Name:      {d['name']}", f"Queue:     {d['queue']} (tenant {d['tenant']})", f"State:     {d['state']}"]
    pending = d.get("pending")
    if pending is not None:
        lines.append(f"Reason:    {pending['reason']}: {pending['message']}")
        if pending["queuePosition"] is not None:
            lines.append(f"Position:  {pending['queuePosition']} of {pending['pendingJobs']} pending "
                         "(0: the engine looks at it first)")
        start = pending["estimatedStart"]
        lines.append("Estimated start: " + ("once its dependencies succeed" if pending["reason"] == "dependency" else
                                            "never, with what is known now" if start is None else
                                            f"{when(start)} UTC (in {max(0.0, start - time.time()):.0f} s)"))
    elif d.get("reason"):
        lines.append(f"Reason:    {d['reason']}")
    if d.get("exitCode") is not None:
        lines.append(f"Exit code: {d['exitCode']}")
    rows = [{"ATTEMPT": str(a["attempt"]), "TASK": str(t["task"]), "NODE": t["node"], "DEVICES": t["devices"] or "-",
             "STATE": t["state"], "EXIT": "" if t["exitCode"] is None else str(t["exitCode"]),
             "STARTED": when(t["startedAt"]), "ENDED": when(t["endedAt"])}
            for a in d["attempts"] for t in a["tasks"]]
    lines += ["Attempts:", table(rows) if rows else "none"]
    return "\n".join(lines)


DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def _duration_s(text: str, option: str) -> float:
    """Seconds of '90', '90s', '15m', '12h' or '30d'."""
    number, unit = (text[:-1], text[-1]) if text[-1:] in DURATION_UNITS else (text, "s")
    try:
        seconds = float(number) * DURATION_UNITS[unit]
    except ValueError:
        fail(f"{option}: {text!r} is not a duration; write seconds or a number with s, m, h or d (30d)")
    if not 0 < seconds < float("inf"):
        fail(f"{option}: {text!r} must be longer than nothing")
    return seconds


def _who(view: dict) -> str:
    return f"token {view['id']} ({view['role']}" + (f" of tenant {view['tenant']})" if view["tenant"] else ")")


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(tokens_app, name="tokens", rich_help_panel="Control plane")

    @app.command(rich_help_panel="Control plane")
    def serve(
        host: Annotated[Optional[str], typer.Option(help="address to listen on (default 127.0.0.1)",
                                                    show_default=False)] = None,
        port: Annotated[Optional[int], typer.Option(min=1, max=65535, help="port to listen on (default 8080)", show_default=False)] = None,
        data_dir: Annotated[Optional[Path], typer.Option(
            "--data-dir", help=f"SQLite database, job logs and working folders (default {DEFAULT_DATA_DIR})",
            show_default=False)] = None,
        db: DbOpt = None,
        policy: Annotated[Optional[str], typer.Option(
            help="ORDER[+PLACEMENT][+backfill][+preempt]…, as for simulate (default fcfs+best-fit)",
            show_default=False)] = None,
        grace_s: Annotated[Optional[float], typer.Option(
            "--grace-s", min=0, help="seconds between the checkpoint signal and SIGKILL (default 30)",
            show_default=False)] = None,
        log_format: Annotated[Optional[LogFormat], typer.Option(
            help="the log on stderr: text lines, or a JSON object a line (default text)", show_default=False)] = None,
        executor: Annotated[Optional[str], typer.Option(
            help="where tasks run: local (this machine's processes) or ray (a Ray cluster) (default local)",
            show_default=False)] = None,
        ray_address: Annotated[Optional[str], typer.Option(
            help="the Ray cluster for --executor ray (default: RAY_ADDRESS, else a local Ray)", show_default=False)] = None,
        tls_cert: Annotated[Optional[Path], typer.Option(
            "--tls-cert", help="serve HTTPS with this certificate chain (PEM); needs --tls-key", show_default=False)] = None,
        tls_key: Annotated[Optional[Path], typer.Option(
            "--tls-key", help="the private key (PEM) of --tls-cert", show_default=False)] = None,
        config: Annotated[Optional[Path], typer.Option(
            "--config", help="a YAML file of these options (dataDir, graceS, ray: {address}…); flags override it",
            show_default=False)] = None,
    ) -> None:
        """Run the control plane: the API, the store and the engine; tasks run on this machine or on Ray."""
        from altostrat.policy.registry import PolicyError
        from altostrat.service.config import ConfigError, load
        from altostrat.service.executor import ExecutorError
        from altostrat.service.database import DatabaseUnavailable
        from altostrat.service.server import TlsError
        from altostrat.service.server import serve as run_server

        try:
            cfg = load(config, dict(host=host, port=port, data_dir=data_dir, db=db, policy=policy, grace_s=grace_s,
                                    log_format=log_format.value if log_format else None, executor=executor,
                                    ray_address=ray_address, tls_cert=tls_cert, tls_key=tls_key))
            options = {"address": cfg.ray.address} if cfg.executor == "ray" else {}
            run_server(cfg.host, cfg.port, cfg.data_dir, cfg.db, cfg.policy, cfg.grace_s,
                       echo=lambda line: print(line, flush=True), log_format=cfg.log_format, executor=cfg.executor,
                       executor_options=options, tls=(cfg.tls.cert, cfg.tls.key) if cfg.tls else None)
        except (PolicyError, ConfigError, ExecutorError, DatabaseUnavailable, TlsError) as exc:
            fail(str(exc))

    @db_app.command("upgrade")
    def db_upgrade(data_dir: DataDirOpt = DEFAULT_DATA_DIR, db: DbOpt = None) -> None:
        """Create or migrate the schema to the latest revision (`serve` does this on start)."""
        from altostrat.service.server import open_store, shown
        from altostrat.service.database import DatabaseUnavailable

        try:
            store = open_store(data_dir, db)
        except DatabaseUnavailable as exc:
            fail(str(exc))
        print(f"{shown(store.url)}: schema at the latest revision")
        store.close()

    @app.command(rich_help_panel="Control plane")
    def apply(
        file: Annotated[str, typer.Option("--file", "-f", help="a YAML file of one or more objects; - for stdin")],
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Create or update the objects of FILE, all or none."""
        import yaml

        from altostrat.service.client import ClientError

        try:
            text = sys.stdin.read() if file == "-" else Path(file).read_text()
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except OSError as exc:
            fail(f"{file}: {exc.strerror}")
        except yaml.YAMLError as exc:
            fail(f"{file}: not valid YAML: {exc}")
        if not docs:
            fail(f"{file}: holds no document")
        sources = [f"{file} (document {i + 1})" for i in range(len(docs))]
        try:
            results = _client(server, token).apply(docs, sources)
        except ClientError as exc:
            fail(str(exc))
        for r in results:
            print(f"{r['object']['kind'].lower()}/{r['object']['metadata']['name']} {r['result']}")

    @app.command(rich_help_panel="Control plane")
    def get(
        kind: Annotated[str, typer.Argument(help="tenants, queues, pools, jobs or services")],
        name: Annotated[Optional[str], typer.Argument(help="one object; all when left out")] = None,
        output: OutputOpt = Output.table,
        watch: Annotated[bool, typer.Option("--watch", "-w", help="then print each change (an EVENT column; "
                                                                  "-o json: one event a line) until Ctrl-C")] = False,
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Show objects and their status."""
        from altostrat.service.client import ClientError

        kind = _kind(kind)
        client = _client(server, token)
        try:
            if watch:
                if name:
                    client.get(kind, name)  # a missing object is an error, as without -w
                _watch(client, kind, name, output)
                return
            objs = [client.get(kind, name)] if name else client.list(kind)
        except ClientError as exc:
            fail(str(exc))
        except KeyboardInterrupt:  # Ctrl-C ends a watch
            return
        if output is Output.json:
            print(json.dumps(objs[0] if name else objs, indent=2))
        else:
            print(table([_columns(kind, o) for o in objs]))

    @app.command(rich_help_panel="Control plane")
    def describe(
        kind: Annotated[str, typer.Argument(help="job, queue, pool or service")],
        name: str,
        output: OutputOpt = Output.table,
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """A job's attempts and nodes (when pending: why, its position, its estimated start); a queue's
        usage, budget and pending jobs with their reasons; a pool's nodes and jobs; a service's replicas."""
        from altostrat.service.client import ClientError
        from altostrat.service.describe_text import RENDER

        described = _kind(kind)
        if described != "Job" and described not in RENDER:
            fail(f"describe {kind}: jobs, queues, pools and services are described; use `altostrat get {kind} NAME`")
        try:
            found = _client(server, token).describe(name, described)
        except ClientError as exc:
            fail(str(exc))
        print(json.dumps(found, indent=2) if output is Output.json else
              _description(found) if described == "Job" else RENDER[described](found))

    @app.command(rich_help_panel="Control plane")
    def delete(kind: str, name: str, server: ServerOpt = None, token: TokenOpt = None) -> None:
        """Delete an object (a job once it has ended; cancel it first)."""
        from altostrat.service.client import ClientError

        kind = _kind(kind)
        try:
            _client(server, token).delete(kind, name)
        except ClientError as exc:
            fail(str(exc))
        print(f"{kind.lower()}/{name} deleted")

    @app.command(rich_help_panel="Control plane")
    def cancel(job: str, server: ServerOpt = None, token: TokenOpt = None) -> None:
        """Cancel a job: its tasks get the checkpoint signal, then SIGKILL after the grace period."""
        from altostrat.service.client import ClientError

        try:
            _client(server, token).cancel(job)
        except ClientError as exc:
            fail(str(exc))
        print(f"job/{job} cancelling")

    @app.command(rich_help_panel="Control plane")
    def logs(
        job: str,
        attempt: Annotated[Optional[int], typer.Option(min=1, help="default: the latest")] = None,
        task: Annotated[Optional[int], typer.Option(min=0, help="default: every task")] = None,
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Print a job's task logs (stdout and stderr)."""
        from altostrat.service.client import ClientError

        try:
            sys.stdout.write(_client(server, token).logs(job, attempt, task))
        except ClientError as exc:
            fail(str(exc))

    @app.command(rich_help_panel="Control plane")
    def login(
        token: Annotated[str, typer.Option("--token", envvar="ALTOSTRAT_TOKEN", prompt="API token", hide_input=True,
                                           help="an API token (asked for when left out, so that it stays out of "
                                                "the shell's history)")],
        server: Annotated[Optional[str], typer.Option("--server", envvar="ALTOSTRAT_SERVER", show_default=False,
                                                      help="the service's URL (default: http://127.0.0.1:8080)")]
        = None,
    ) -> None:
        """Check a token against the server and save both as the context the other verbs use."""
        from altostrat.service.client import DEFAULT_SERVER, Client, ClientError, save_context

        server = server or DEFAULT_SERVER
        try:
            me = Client(server, token).whoami()
        except ClientError as exc:
            fail(str(exc))
        path = save_context(server, token)
        print(f"logged in to {server} as {_who(me)}; context saved to {path} (mode 600)")

    @app.command(rich_help_panel="Control plane")
    def audit(
        after: Annotated[int, typer.Option(help="only the records after this id (the `last` of a previous page)")] = 0,
        limit: Annotated[int, typer.Option(help="at most this many records (1 to 1000)")] = 100,
        output: OutputOpt = Output.table,
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """The audit log, oldest first: who made which mutating call, when, and its result (an admin
        token or a viewer of every tenant)."""
        from altostrat.service.client import ClientError

        try:
            page = _client(server, token).audit(after, limit)
        except ClientError as exc:
            fail(str(exc))
        if output is Output.json:
            print(json.dumps(page, indent=2))
            return
        print(table([{"ID": str(r["id"]), "AT": when(r["at"]), "WHO": r["who"], "ROLE": r["role"] or "-",
                      "ACTION": r["action"], "TARGET": r["target"], "RESULT": r["result"]} for r in page["items"]]))

    @tokens_app.command("create")
    def tokens_create(
        role: Annotated[str, typer.Option(help="admin, tenant or viewer")],
        tenant: Annotated[Optional[str], typer.Option(help="the Tenant it acts for: required for a tenant token; "
                                                           "a viewer without one sees every tenant")] = None,
        name: Annotated[Optional[str], typer.Option(help="a label for the audit log")] = None,
        expires_in: Annotated[Optional[str], typer.Option(
            help="refused after this long: a number of seconds, or with a unit: 90m, 12h, 30d (default: never)")] = None,
        server: ServerOpt = None,
        token: TokenOpt = None,
    ) -> None:
        """Create a token and print it: the only time it is shown (the server keeps its SHA-256)."""
        from altostrat.service.client import ClientError

        life = None if expires_in is None else _duration_s(expires_in, "--expires-in")
        try:
            made = _client(server, token).create_token(role, tenant, name, life)
        except ClientError as exc:
            fail(str(exc))
        print(made["token"])  # alone on stdout, so that TOKEN=$(altostrat tokens create …) works
        expiry = f", expires {when(made['expiresAt'])} UTC" if made.get("expiresAt") else ""
        print(f"created {_who(made)}{expiry}; store it now, it is not shown again", file=sys.stderr)

    @tokens_app.command("revoke")
    def tokens_revoke(token_id: Annotated[int, typer.Argument(help="the token's id (see `tokens list`)")],
                      server: ServerOpt = None, token: TokenOpt = None) -> None:
        """Revoke a token: every later call with it gets 401."""
        from altostrat.service.client import ClientError

        try:
            _client(server, token).revoke_token(token_id)
        except ClientError as exc:
            fail(str(exc))
        print(f"token {token_id} revoked")

    @tokens_app.command("list")
    def tokens_list(server: ServerOpt = None, token: TokenOpt = None) -> None:
        """Every token, live and revoked (never its secret)."""
        from altostrat.service.client import ClientError

        try:
            items = _client(server, token).tokens()
        except ClientError as exc:
            fail(str(exc))
        print(table([{"ID": str(i["id"]), "ROLE": i["role"], "TENANT": i["tenant"] or "-", "NAME": i["name"],
                       "CREATED": when(i["createdAt"]), "EXPIRES": when(i["expiresAt"]),
                       "REVOKED": when(i["revokedAt"])} for i in items]))
