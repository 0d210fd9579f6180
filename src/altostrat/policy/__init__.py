"""Scheduling policy pieces: `order` (which pending job next) and `placement` (where).

Importing this package imports every module of its `order` and `placement` folders, and
each module registers its pieces with @register, so adding a policy is adding a file.
"""

from altostrat.policy import order, placement  # noqa: F401
