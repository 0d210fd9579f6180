"""The HTTP client the CLI verbs use, and the context `altostrat login` saves; its errors are
one readable message each."""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8080"


class ClientError(Exception):
    pass


def context_path() -> Path:
    """$XDG_CONFIG_HOME/altostrat/context.json, ~/.config/altostrat/context.json without it."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "altostrat" / "context.json"


def save_context(server: str, token: str) -> Path:
    """Write the context readable by its owner only (0600), atomically."""
    path = context_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # an older file's mode survives O_CREAT
        json.dump({"server": server, "token": token}, f)
        f.write("\n")
    os.replace(tmp, path)
    return path


def load_context() -> dict[str, str] | None:
    """The saved context, None without one. Like ssh with a key, refuse one others can read."""
    path = context_path()
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ClientError(f"{path} holds a token and others may read it (mode {stat.S_IMODE(mode):o}); "
                              f"run `chmod 600 {path}` or `altostrat login` again")
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ClientError(f"{path}: not a readable context ({exc}); run `altostrat login` again") from None
    if not (isinstance(data, dict) and isinstance(data.get("server"), str) and isinstance(data.get("token"), str)):
        raise ClientError(f'{path}: a context is {{"server": URL, "token": TOKEN}}; run `altostrat login` again')
    return data


def connect(server: str | None, token: str | None) -> Client:
    """The client for --server/ALTOSTRAT_SERVER and --token/ALTOSTRAT_TOKEN, each filled in from the
    login context when absent. The context's token only ever goes to the context's server."""
    context = load_context() if server is None or token is None else None
    if server is None:
        server = context["server"] if context else DEFAULT_SERVER
    if token is None and context and context["server"].rstrip("/") == server.rstrip("/"):
        token = context["token"]
    return Client(server, token)


def describe(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text.strip()
    if isinstance(detail, list):
        detail = "\n".join(f"  {d.get('field') or '(object)'}: {d.get('message')}" for d in detail)
        return f"{response.status_code} invalid:\n{detail}"
    return f"{response.status_code} {detail}"


class Client:
    def __init__(self, server: str, token: str | None, timeout: float = 30.0) -> None:
        if not token:
            raise ClientError(f"no token for {server}: pass --token, set ALTOSTRAT_TOKEN or run `altostrat login` "
                              "(`altostrat serve` prints the admin token)")
        self.server = server.rstrip("/")
        self.http = httpx.Client(base_url=self.server, headers={"Authorization": f"Bearer {token}"}, timeout=timeout)

    def call(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kw)
        except httpx.TransportError as exc:
            raise ClientError(f"cannot reach {self.server} ({exc}); start `altostrat serve` or set --server / "
                              "ALTOSTRAT_SERVER") from None
        if response.status_code >= 400:
            raise ClientError(describe(response))
        return response

    def apply(self, objects: list[dict], sources: list[str]) -> list[dict]:
        """All objects in one transaction; a field error names its source (file and document)."""
        try:
            return self.call("POST", "/v1/objects:batch", json={"objects": objects}).json()["results"]
        except ClientError as exc:
            raise ClientError(re.sub(r"objects\[(\d+)\]\.?", lambda m: f"{sources[int(m.group(1))]}: ", str(exc))) from None

    def list(self, kind: str) -> list[dict]:
        return self.call("GET", f"/v1/{kind}").json()["items"]

    def watch(self, kind: str, name: str | None = None, resource_version: float | None = None,
              timeout_s: float | None = None) -> Iterator[dict]:
        """The events of one watch stream (service/watch.py), until the server ends it."""
        params = {k: v for k, v in (("watch", "true"), ("name", name), ("resourceVersion", resource_version),
                                    ("timeoutSeconds", timeout_s)) if v is not None}
        try:
            # the server sends a BOOKMARK at least every 10 s: a read waiting far longer means it is gone
            with self.http.stream("GET", f"/v1/{kind}", params=params, timeout=httpx.Timeout(30, read=60)) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ClientError(describe(response))
                for line in response.iter_lines():
                    if line:
                        yield json.loads(line)
        except httpx.TransportError as exc:
            raise ClientError(f"lost {self.server} ({exc}); is `altostrat serve` running?") from None

    def get(self, kind: str, name: str) -> dict:
        return self.call("GET", f"/v1/{kind}/{name}").json()

    def delete(self, kind: str, name: str) -> dict:
        return self.call("DELETE", f"/v1/{kind}/{name}").json()

    def cancel(self, name: str) -> dict:
        return self.call("POST", f"/v1/jobs/{name}:cancel").json()

    def describe(self, name: str, kind: str = "Job") -> dict:
        return self.call("GET", f"/v1/{kind.lower()}s/{name}:describe").json()

    def logs(self, name: str, attempt: int | None = None, task: int | None = None) -> str:
        params = {k: v for k, v in (("attempt", attempt), ("task", task)) if v is not None}
        return self.call("GET", f"/v1/jobs/{name}/logs", params=params).text

    def whoami(self) -> dict:
        return self.call("GET", "/v1/whoami").json()

    def create_token(self, role: str, tenant: str | None, name: str | None, expires_in_s: float | None = None) -> dict:
        body = {k: v for k, v in (("role", role), ("tenant", tenant), ("name", name), ("expiresInS", expires_in_s))
                if v is not None}
        return self.call("POST", "/v1/tokens", json=body).json()

    def revoke_token(self, token_id: int) -> dict:
        return self.call("DELETE", f"/v1/tokens/{token_id}").json()

    def tokens(self) -> list[dict]:
        return self.call("GET", "/v1/tokens").json()["items"]

    def audit(self, after: int = 0, limit: int = 100) -> dict:
        return self.call("GET", "/v1/audit", params={"after": after, "limit": limit}).json()
