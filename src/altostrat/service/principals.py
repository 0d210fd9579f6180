"""The live tokens a store has looked up, by hash, so that a request's token costs no read."""

from __future__ import annotations

import threading

from sqlalchemy import Connection


class PrincipalCache:
    """Live tokens by hash, so that a request's token costs no read once it has been seen.

    A revocation (Store.revoke_token, a Tenant's deletion) marks its connection with `changing`;
    once that transaction has committed or rolled back (`settled`, when the connection goes back
    to the pool), the cache is emptied. While one is in flight nothing is added, and a lookup
    that began before the last settlement (an older `generation`) adds nothing either, so a
    revoked token is refused from the moment its revocation commits. Revocations reach the
    database only through a Store: one `serve` per database, as the reconciler requires too."""

    MAX = 10_000  # entries before the cache starts again (live tokens are made by admins only)
    _MARK = "altostrat_token_changes"  # the connection's count of revocations in its transaction

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.found: dict[str, dict] = {}
        self.generation = 0
        self.in_flight = 0

    def get(self, digest: str) -> dict | None:
        return self.found.get(digest)

    def put(self, digest: str, principal: dict, generation: int) -> None:
        with self.lock:
            if self.in_flight == 0 and generation == self.generation:
                if len(self.found) >= self.MAX:
                    self.found.clear()
                self.found[digest] = principal

    def changing(self, conn: Connection) -> None:
        with self.lock:
            self.in_flight += 1
            self.found.clear()
        conn.info[self._MARK] = conn.info.get(self._MARK, 0) + 1

    def settled(self, info: dict) -> None:
        """`info`: the pooled connection's (Connection.info)."""
        changes = info.pop(self._MARK, 0)
        if changes:
            with self.lock:
                self.in_flight -= changes
                self.generation += 1
                self.found.clear()
