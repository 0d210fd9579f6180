"""The event log: one record per arrival, decision and lifecycle transition.

Columns are plain Python lists appended on the hot path; metrics and exports read them
once at the end. Every metric comes from this log, for the simulator and the service alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SUBMIT, START, FINISH, PREEMPT, REJECT, NOTICE, NODE_DOWN, NODE_UP = range(8)
KIND_NAMES = ("submit", "start", "finish", "preempt", "reject", "notice", "node_down", "node_up")
NODE_EVENTS = (NOTICE, NODE_DOWN, NODE_UP)  # job is -1, node names the node


@dataclass(slots=True)
class EventLog:
    time: list[float] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    job: list[int] = field(default_factory=list)  # job index in the workload
    gpu_milli: list[int] = field(default_factory=list)  # GPUs the event allocates or frees
    cpu_milli: list[int] = field(default_factory=list)
    # first node of a start; the revoked node of a preempt caused by a revocation; the node
    # of a node event; else -1
    node: list[int] = field(default_factory=list)

    def append(self, time: float, kind: int, job: int, gpu_milli: int = 0, cpu_milli: int = 0, node: int = -1) -> None:
        self.time.append(time)
        self.kind.append(kind)
        self.job.append(job)
        self.gpu_milli.append(gpu_milli)
        self.cpu_milli.append(cpu_milli)
        self.node.append(node)

    def __len__(self) -> int:
        return len(self.time)

    def columns(self, job_ids: list[str]) -> dict[str, list]:
        """The log as named columns, with job ids and kind names spelled out."""
        return {
            "time_s": self.time,
            "event": [KIND_NAMES[k] for k in self.kind],
            "job": [job_ids[j] if j >= 0 else "" for j in self.job],
            "gpu_milli": self.gpu_milli,
            "cpu_milli": self.cpu_milli,
            "node": self.node,
        }
