"""The HTTP client the CLI verbs use; its errors are one readable message each."""

from __future__ import annotations

import re

import httpx


class ClientError(Exception):
    pass


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
            raise ClientError("no token: pass --token or set ALTOSTRAT_TOKEN (`altostrat serve` prints the admin token)")
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

    def get(self, kind: str, name: str) -> dict:
        return self.call("GET", f"/v1/{kind}/{name}").json()

    def delete(self, kind: str, name: str) -> dict:
        return self.call("DELETE", f"/v1/{kind}/{name}").json()

    def cancel(self, name: str) -> dict:
        return self.call("POST", f"/v1/jobs/{name}:cancel").json()

    def logs(self, name: str, attempt: int | None = None, task: int | None = None) -> str:
        params = {k: v for k, v in (("attempt", attempt), ("task", task)) if v is not None}
        return self.call("GET", f"/v1/jobs/{name}/logs", params=params).text
