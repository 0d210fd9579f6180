"""Scheduling policy pieces: `order` (which pending job next), `placement` (where) and
`gate` (not yet, although it fits).

Importing this package imports every module of its `order`, `placement` and `gate` folders, and
each module registers its pieces with @register, so adding a policy is adding a file.
"""

from altostrat.policy import gate, order, placement  # noqa: F401
