"""Workload loaders; importing this package registers them all."""

from altostrat.policy.autoload import import_all

import_all(__name__, __path__)
