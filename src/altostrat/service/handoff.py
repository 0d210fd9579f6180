"""New Job rows handed from the API's group commits to the reconciler, so that a sync takes them
as they were written instead of reading them back and decoding them."""

from __future__ import annotations

import threading

MAX_ROWS = 100_000  # rows not taken for that long (a stopped reconciler) are dropped: a sync reads them


class Handoff:
    def __init__(self) -> None:
        self.rows: dict[int, dict] = {}  # id -> row, as committed
        self.lock = threading.Lock()

    def put(self, rows: list[dict]) -> None:
        """Told by the store's committer thread: these Job rows are committed, as they are."""
        with self.lock:
            if len(self.rows) > MAX_ROWS:
                self.rows.clear()
            self.rows.update((row["id"], row) for row in rows)

    def take(self, versions: dict[int, int], ids: list[int], cursor: int) -> tuple[list[dict], list[int]]:
        """(the rows of `ids` handed over at their `versions`, the ids still to read). Rows written
        after `cursor`, the last change the sync saw, are kept for the next one."""
        with self.lock:
            rows, self.rows = self.rows, {}
        handed = [rows.pop(i) for i in ids if i in rows and rows[i]["resource_version"] == versions[i]]
        taken = {row["id"] for row in handed}
        keep = {i: row for i, row in rows.items() if row["seq"] > cursor}
        if keep:
            with self.lock:
                self.rows = {**keep, **self.rows}
        return handed, [i for i in ids if i not in taken]
